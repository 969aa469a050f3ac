"""Attribute hygiene (issue #11): case-insensitive column clashes renamed and reported (a real Shapefile
with an upper-case NAME column), nested GeoJSON properties kept as JSON, the DBF's encoding reported
as it is."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from shapely.geometry import box, mapping
from typer.testing import CliRunner

from cli.main import build_app
from layers.ingest import inspect_layer, parcels_from_geojson, read_parcels
from tests.geoms import X0, Y0


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    app, runner = build_app(), CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".zip", ".fgb"])
def test_real_shapefile_with_upper_case_name_converts_without_a_traceback(cli, layer_data, tmp_path, suffix):
    target = tmp_path / f"out{suffix}"
    run = cli("parcels", "convert", layer_data / "china_country_name.shp", target)
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert any("'NAME' renamed 'NAME_2'" in n and "'name'" in n for n in report["notes"])
    written = gpd.read_file(target)
    assert {"name", "NAME_2", "FCNAME"} <= set(written.columns)
    assert written["name"].iloc[0] == written["NAME_2"].iloc[0] == "CHINA"
    assert written["FCNAME"].iloc[0] == "中国"


def test_clashing_geojson_properties_are_renamed_the_same_way_on_both_paths(tmp_path, work_crs):
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "parcel_id": "A1", "Name": "甲", "NAME": "乙", "Area": 1, "AREA": 2},
        "geometry": mapping(box(117.80, 30.90, 117.81, 30.91))}]}
    path = tmp_path / "clash.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    quick = parcels_from_geojson(doc, work_crs=work_crs)
    from_file = read_parcels(path, work_crs=work_crs)
    for parcels in (quick, from_file):
        assert list(parcels.frame.columns) == ["parcel_id", "name", "Name_2", "NAME_3", "Area", "AREA_2",
                                               "geometry"]
        assert parcels.frame["name"].iloc[0] == "甲" and parcels.frame["NAME_3"].iloc[0] == "乙"
        assert sum("renamed" in n for n in parcels.notes) == 3


def test_nested_geojson_properties_stay_json(tmp_path, work_crs):
    parent = {"adcode": 340700, "名称": "铜陵市"}
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "parcel_id": "P1", "parent": parent, "acroutes": [100000, 340000]},
        "geometry": mapping(box(X0, Y0, X0 + 100, Y0 + 100))}],
        "crs": {"type": "name", "properties": {"name": "EPSG:4548"}}}
    path = tmp_path / "nested.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    for parcels in (parcels_from_geojson(doc, work_crs=work_crs), read_parcels(path, work_crs=work_crs)):
        frame = parcels.frame
        assert json.loads(frame["parent"].iloc[0]) == parent  # JSON, not "{'adcode': 340700, ...}"
        assert json.loads(frame["acroutes"].iloc[0]) == [100000, 340000]
    assert parcels_from_geojson(doc, work_crs=work_crs).frame["parent"].iloc[0] == \
        '{"adcode": 340700, "名称": "铜陵市"}'


def test_encoding_reported_is_the_dbf_language_byte_not_gdals_output(layer_data, work_crs, cli):
    """china_country_gbk.dbf: GBK text, language byte 0x4D (CP936), no .cpg."""
    layer = inspect_layer(layer_data / "china_country_gbk.shp", work_crs=work_crs)
    assert layer.encoding == "CP936"
    assert layer.frame["FCNAME"].iloc[0] == "中国"
    run = cli("layers", "inspect", layer_data / "china_country_gbk.shp")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout[run.stdout.index("{"):])["encoding"] == "CP936"
    # the UTF-8 original without .cpg or language byte is detected as UTF-8
    assert inspect_layer(layer_data / "china_country_name.shp", work_crs=work_crs).encoding == "UTF-8"
