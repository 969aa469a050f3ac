"""Attribute encodings: GBK Shapefiles without .cpg are detected, declared encodings win, no mojibake."""

from __future__ import annotations

import pytest

from layers.encoding import detect_text_encoding, shapefile_encoding
from layers.errors import EncodingError
from layers.ingest import read_layer, read_parcels

RED = "水源涵养生态保护红线"


def test_gbk_zip_without_cpg_from_a_department(layer_data, catalogue, work_crs):
    layer = read_layer(layer_data / "redline_gbk_nocpg.zip", "ecological_redline", work_crs=work_crs,
                       catalogue=catalogue)
    assert layer.encoding == "GB18030"
    assert list(layer.frame["名称"]) == [RED, "水土保持生态保护红线"]
    assert list(layer.frame["类型"]) == ["水源涵养", "水土保持"]
    assert any("no .cpg" in n and "GB18030" in n for n in layer.notes)
    assert layer.name == "生态保护红线"  # GBK member name decoded, not cp437 mojibake
    assert layer.crs_in == "EPSG:4527" and layer.crs_out == "EPSG:4548"
    assert list(layer.frame["feature_id"]) == ["101", "102"]
    # areas known in EPSG:4548 survive the EPSG:4527 file: 7 500 m² and 40 000 m²
    assert [round(a, 2) for a in layer.frame.geometry.area] == [7_500.0, 40_000.0]


def _shapefile(tmp_path, red_frame, encoding: str, keep_cpg: bool):
    path = tmp_path / "red.shp"
    red_frame.to_file(path, encoding=encoding)
    if not keep_cpg:
        (tmp_path / "red.cpg").unlink()
    return path


@pytest.mark.parametrize("encoding,expected", [("GBK", "GB18030"), ("UTF-8", "UTF-8")])
def test_detected_without_cpg(tmp_path, red_frame, catalogue, work_crs, encoding, expected):
    path = _shapefile(tmp_path, red_frame, encoding, keep_cpg=False)
    assert shapefile_encoding(path, None).encoding == expected
    layer = read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    assert layer.frame["名称"].iloc[0] == RED


def test_cpg_is_honoured(tmp_path, red_frame, catalogue, work_crs):
    path = _shapefile(tmp_path, red_frame, "GBK", keep_cpg=True)
    choice = shapefile_encoding(path, None)
    assert choice.encoding is None and ".cpg" in choice.note  # GDAL reads the .cpg itself
    layer = read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    assert layer.frame["名称"].iloc[0] == RED


def test_declared_encoding_wins(tmp_path, red_frame, work_crs):
    path = _shapefile(tmp_path, red_frame, "GBK", keep_cpg=False)
    parcels = read_parcels(path, work_crs=work_crs, encoding="GBK")
    assert parcels.frame["名称"].iloc[0] == RED
    assert any("as declared" in n for n in parcels.notes)


def test_unknown_declared_encoding_is_a_domain_error(tmp_path, red_frame, work_crs):
    path = _shapefile(tmp_path, red_frame, "GBK", keep_cpg=False)
    with pytest.raises(EncodingError, match="klingon"):
        read_parcels(path, work_crs=work_crs, encoding="klingon")


def test_ascii_attributes_need_no_detection(tmp_path, red_frame):
    path = _shapefile(tmp_path, red_frame.drop(columns=["名称"]).assign(n="abc"), "UTF-8", keep_cpg=False)
    assert shapefile_encoding(path, None).encoding is None


def test_ldid_in_the_dbf_is_left_to_gdal(tmp_path, red_frame, catalogue, work_crs):
    path = _shapefile(tmp_path, red_frame, "GBK", keep_cpg=False)
    dbf = tmp_path / "red.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0x4D  # LDID 77 = code page 936 (GBK)
    dbf.write_bytes(bytes(data))
    assert shapefile_encoding(path, None).encoding is None
    layer = read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    assert layer.frame["名称"].iloc[0] == RED


def test_detection_prefers_strict_utf8_then_gb18030():
    assert detect_text_encoding([RED.encode("utf-8")], "x") == "UTF-8"
    assert detect_text_encoding([RED.encode("gbk")], "x") == "GB18030"
    assert detect_text_encoding([b"plain"], "x") is None
    with pytest.raises(EncodingError, match=r"x\.dbf"):
        detect_text_encoding([b"\xff\xff\xff"], "x.dbf")


def test_value_cut_mid_character_still_detected(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    # tools that size DBF fields in characters cut GBK text in half a character at the field end
    path = tmp_path / "cut.shp"
    frame = gpd.GeoDataFrame({"mc": ["x" * 9]}, geometry=[box(500000, 3420000, 500010, 3420010)], crs=4548)
    frame.to_file(path, encoding="GBK")
    (tmp_path / "cut.cpg").unlink()
    dbf = tmp_path / "cut.dbf"
    data = dbf.read_bytes()
    width = data[32 + 16]
    start = int.from_bytes(data[8:10], "little") + 1  # first record, after the deletion flag
    cut = RED.encode("gbk")[:7]  # three and a half characters
    dbf.write_bytes(data[:start] + cut.ljust(width, b" ") + data[start + width:])
    assert shapefile_encoding(path, None).encoding == "GB18030"


def test_western_ldid_on_gbk_text_is_not_trusted(tmp_path, red_frame, catalogue, work_crs):
    path = _shapefile(tmp_path, red_frame, "GBK", keep_cpg=False)
    dbf = tmp_path / "red.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0x57  # "Windows ANSI" (code page 1252), as ArcGIS stamps it
    dbf.write_bytes(bytes(data))
    choice = shapefile_encoding(path, None)
    assert choice.encoding == "GB18030" and "0x57" in choice.note
    layer = read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    assert layer.frame["名称"].iloc[0] == RED


def test_western_ldid_on_latin_text_is_kept(tmp_path, red_frame):
    path = tmp_path / "latin.shp"
    red_frame.drop(columns=["名称"]).assign(n=["Café", "Zürich", "Øresund"]).to_file(path, encoding="cp1252")
    (tmp_path / "latin.cpg").unlink()
    dbf = tmp_path / "latin.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0x57
    dbf.write_bytes(bytes(data))
    assert shapefile_encoding(path, None).encoding is None  # GDAL decodes 1252 from the LDID


def test_undetectable_text_asks_for_an_encoding(tmp_path, red_frame, work_crs):
    path = tmp_path / "latin.shp"
    red_frame.drop(columns=["名称"]).assign(n=["Café", "Zürich", "Øresund"]).to_file(path, encoding="cp1252")
    (tmp_path / "latin.cpg").unlink()  # LDID is 0 as GDAL writes it: nothing says 1252
    with pytest.raises(EncodingError, match=r"latin\.dbf.*--encoding"):
        read_parcels(path, work_crs=work_crs)
    parcels = read_parcels(path, work_crs=work_crs, encoding="cp1252")
    assert list(parcels.frame["n"]) == ["Café", "Zürich", "Øresund"]


def test_glob_characters_in_the_file_name_do_not_hide_the_dbf(tmp_path, red_frame, catalogue, work_crs):
    """A GBK Shapefile without .cpg named like "红线[2023].shp": its .dbf is found, no mojibake."""
    path = tmp_path / "red[2023].shp"
    red_frame.to_file(path, encoding="GBK")
    (tmp_path / "red[2023].cpg").unlink()
    assert shapefile_encoding(path, None).encoding == "GB18030"
    layer = read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    assert layer.frame["名称"].iloc[0] == RED
