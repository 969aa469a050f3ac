"""Every supported format, written from shapely geometries, reads back into EPSG:4548 with the same areas."""

from __future__ import annotations

import zipfile
from pathlib import Path

import ezdxf
import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from shapely.geometry import LineString, Point

from layers.errors import AmbiguousLayerError, DuplicateIdError, GeometryTypeError, UnsupportedFormatError
from layers.formats import NoSuchLayerError
from layers.ingest import read_layer, read_parcels
from tests.geoms import BOW_TIE, X0, Y0, square
from tests.layers.conftest import KNOWN_AREA

KIND = "ecological_redline"


def _read(path: Path, catalogue, work_crs, **kw):
    return read_layer(path, KIND, work_crs=work_crs, catalogue=catalogue, **kw)


def _assert_same_layer(layer, red_frame) -> None:
    assert layer.crs_out == "EPSG:4548"
    frame = layer.frame.sort_values("feature_id")  # FlatGeobuf's spatial index reorders features
    assert list(frame["feature_id"]) == ["7", "8", "9"]
    assert abs(frame.geometry.area.sum() - KNOWN_AREA) < 0.01
    for got, want in zip(frame.geometry, red_frame.geometry, strict=True):
        assert abs(got.area - want.area) < 0.01
        assert got.symmetric_difference(want).area < 0.01
    assert list(frame["名称"]) == list(red_frame["名称"])


@pytest.mark.parametrize("epsg", [4527, 4548, 4490, 4326])
def test_geopackage_round_trip_from_any_crs(tmp_path, catalogue, work_crs, red_frame, epsg):
    path = tmp_path / "red.gpkg"
    red_frame.to_crs(epsg).to_file(path, layer="redline")
    layer = _read(path, catalogue, work_crs)
    _assert_same_layer(layer, red_frame)
    assert layer.crs_in == f"EPSG:{epsg}"
    assert layer.name == "redline"
    assert len(layer.checksum) == 64


def test_shapefile_set_with_siblings(tmp_path, catalogue, work_crs, red_frame):
    red_frame.to_crs(4527).to_file(tmp_path / "red.shp", encoding="UTF-8")
    layer = _read(tmp_path / "red.shp", catalogue, work_crs)
    _assert_same_layer(layer, red_frame)
    assert layer.crs_in == "EPSG:4527"
    assert layer.meta["id_column"] == "BSM"


def test_checksum_changes_with_attributes_of_a_shapefile(tmp_path, catalogue, work_crs, red_frame):
    red_frame.to_file(tmp_path / "a.shp", encoding="UTF-8")
    red_frame.assign(名称="改").to_file(tmp_path / "b.shp", encoding="UTF-8")
    a = _read(tmp_path / "a.shp", catalogue, work_crs)
    b = _read(tmp_path / "b.shp", catalogue, work_crs)
    assert a.checksum != b.checksum  # the .dbf is part of the source bytes


def test_shapefile_zip(tmp_path, catalogue, work_crs, red_frame):
    red_frame.to_crs(4527).to_file(tmp_path / "red.shp", encoding="UTF-8")
    with zipfile.ZipFile(tmp_path / "red.zip", "w") as archive:
        for part in tmp_path.glob("red.*"):
            if part.suffix != ".zip":
                archive.write(part, f"data/{part.name}")
    layer = _read(tmp_path / "red.zip", catalogue, work_crs)
    _assert_same_layer(layer, red_frame)
    assert layer.source == "red.zip!red.shp"


def test_geopackage_with_two_layers_needs_a_layer_name(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "two.gpkg"
    red_frame.to_file(path, layer="红线")
    red_frame.iloc[:1].to_file(path, layer="other")
    with pytest.raises(AmbiguousLayerError) as err:
        _read(path, catalogue, work_crs)
    assert "红线" in err.value.user_message and "other" in err.value.user_message
    assert len(_read(path, catalogue, work_crs, layer="other").frame) == 1
    _assert_same_layer(_read(path, catalogue, work_crs, layer="红线"), red_frame)
    with pytest.raises(NoSuchLayerError, match="nope"):
        _read(path, catalogue, work_crs, layer="nope")


def test_geojson_4490(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "urban.geojson"
    red_frame.to_crs(4490).to_file(path)
    layer = _read(path, catalogue, work_crs)
    _assert_same_layer(layer, red_frame)
    assert layer.crs_in == "EPSG:4490"


def test_geojson_rfc7946_without_crs_member_is_4326(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "rfc.geojson"
    red_frame.to_crs(4326).to_file(path, driver="GeoJSON", RFC7946="YES", COORDINATE_PRECISION=12)
    assert '"crs"' not in path.read_text(encoding="utf-8")
    layer = _read(path, catalogue, work_crs)
    assert layer.crs_in == "EPSG:4326"
    assert abs(layer.frame.geometry.area.sum() - KNOWN_AREA) < 0.01


def test_flatgeobuf(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "red.fgb"
    red_frame.to_crs(4527).to_file(path)
    _assert_same_layer(_read(path, catalogue, work_crs), red_frame)


def test_geoparquet(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "red.parquet"
    red_frame.to_crs(4527).to_parquet(path)
    layer = _read(path, catalogue, work_crs)
    _assert_same_layer(layer, red_frame)
    assert layer.meta["format"] == "GeoParquet"


def test_kml(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "red.kml"
    red_frame.to_crs(4326).to_file(path, driver="KML")
    layer = _read(path, catalogue, work_crs)
    assert layer.crs_in == "EPSG:4326"
    assert abs(layer.frame.geometry.area.sum() - KNOWN_AREA) < 0.01
    assert list(layer.frame["名称"]) == list(red_frame["名称"])
    assert "tessellate" not in layer.frame.columns or layer.frame["tessellate"].notna().all()


def _dxf(path: Path) -> None:
    doc = ezdxf.new()
    msp = doc.modelspace()
    doc.layers.add("红线")
    msp.add_lwpolyline([(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 + 100), (X0, Y0 + 100)], close=True,
                       dxfattribs={"layer": "红线"})
    polyline = msp.add_polyline2d([(X0 + 300, Y0), (X0 + 400, Y0), (X0 + 400, Y0 + 50)],
                                  dxfattribs={"layer": "红线"})
    polyline.close(True)
    hatch = msp.add_hatch(dxfattribs={"layer": "填充"})
    outer = [(X0 + 500, Y0), (X0 + 600, Y0), (X0 + 600, Y0 + 100), (X0 + 500, Y0 + 100)]
    hatch.paths.add_polyline_path(outer, is_closed=True)
    hatch.paths.add_polyline_path([(X0 + 525, Y0 + 25), (X0 + 575, Y0 + 25), (X0 + 575, Y0 + 75),
                                   (X0 + 525, Y0 + 75)], is_closed=True)
    msp.add_lwpolyline([(X0, Y0 + 500), (X0 + 50, Y0 + 500)], close=False)  # an open line: set aside
    msp.add_text("地块注记", dxfattribs={"insert": (X0, Y0)})
    doc.saveas(path)


def test_dxf_closed_polylines_and_hatches(tmp_path, catalogue, work_crs):
    path = tmp_path / "plan.dxf"
    _dxf(path)
    layer = _read(path, catalogue, work_crs, crs="EPSG:4548")
    areas = sorted(round(a, 6) for a in layer.frame.geometry.area)
    assert areas == [2_500.0, 7_500.0, 10_000.0]  # triangle, hatch with hole, square
    assert any("set aside 2 entities" in n for n in layer.notes)
    only = _read(path, catalogue, work_crs, crs="EPSG:4548", layer="填充")
    assert list(only.frame.geometry.area.round(6)) == [7_500.0]


def test_dxf_without_declared_crs_suggests_one(tmp_path, catalogue, work_crs):
    path = tmp_path / "plan.dxf"
    _dxf(path)
    from layers.errors import CRSMissingError

    with pytest.raises(CRSMissingError, match="EPSG:4548"):
        _read(path, catalogue, work_crs)


def test_csv_with_wkt_needs_declared_crs(layer_data, catalogue, work_crs):
    layer = read_layer(layer_data / "urban_wkt_gbk.csv", "urban_boundary", work_crs=work_crs,
                       catalogue=catalogue, crs="EPSG:4548")
    assert list(layer.frame["名称"]) == ["城镇开发边界一", "城镇开发边界二"]
    assert list(layer.frame["feature_id"]) == ["1", "2"]
    assert layer.frame.geometry.area.tolist() == [10_000.0, 5_000.0]
    assert layer.encoding == "GB18030"


def test_csv_bad_wkt_names_the_row(tmp_path, catalogue, work_crs):
    path = tmp_path / "bad.csv"
    path.write_text("id,wkt\n1,\"POLYGON ((0 0, 1 0, 1 1, 0 0))\"\n2,POLYGON ((oops\n", encoding="utf-8")
    from layers.errors import UnreadableLayerError

    with pytest.raises(UnreadableLayerError, match="row 3"):
        _read(path, catalogue, work_crs, crs="EPSG:4548")


def _tif(path: Path, data: np.ndarray, crs: str | None = "EPSG:4548", nodata=None) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=Affine(10, 0, X0, 0, -10, Y0 + 100),
                       nodata=nodata) as dst:
        dst.write(data, 1)


def test_geotiff_polygonised_non_zero_by_default(tmp_path, catalogue, work_crs):
    data = np.zeros((10, 10), dtype="uint8")
    data[0:3, 0:3] = 4  # 9 cells of 100 m²
    data[5:10, 5:10] = 3  # 25 cells
    data[9, 0] = 255  # nodata
    path = tmp_path / "hazard.tif"
    _tif(path, data, nodata=255)
    layer = read_layer(path, "geohazard_zone", work_crs=work_crs, catalogue=catalogue)
    assert sorted(layer.frame["value"]) == [3.0, 4.0]
    assert abs(layer.frame.geometry.area.sum() - 3_400.0) < 1e-6
    only_high = read_layer(path, "geohazard_zone", work_crs=work_crs, catalogue=catalogue, raster_values=[4])
    assert abs(only_high.frame.geometry.area.sum() - 900.0) < 1e-6


def test_geotiff_with_no_selected_cells_is_empty(tmp_path, catalogue, work_crs):
    from layers.errors import EmptyLayerError

    path = tmp_path / "none.tif"
    _tif(path, np.zeros((4, 4), dtype="int16"))
    with pytest.raises(EmptyLayerError, match=r"none\.tif"):
        read_layer(path, "geohazard_zone", work_crs=work_crs, catalogue=catalogue)


def test_bubiao_txt_is_dispatched_to_the_bubiao_reader(test_data, work_crs):
    parcels = read_parcels(test_data / "bubiao" / "two_parcels_hole.txt", work_crs=work_crs)
    assert len(parcels.frame) == 2
    assert parcels.frame.crs == CRS.from_epsg(4548)
    assert parcels.crs_in.startswith("EPSG:45")
    assert (parcels.frame.geometry.area > 0).all()


def test_plain_text_is_not_taken_for_bubiao(tmp_path, work_crs):
    path = tmp_path / "readme.txt"
    path.write_text("just notes", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match="部标"):
        read_parcels(path, work_crs=work_crs)


def test_unknown_extension(tmp_path, catalogue, work_crs):
    path = tmp_path / "plan.xyz"
    path.write_bytes(b"x")
    with pytest.raises(UnsupportedFormatError, match=r"plan\.xyz"):
        _read(path, catalogue, work_crs)


@pytest.mark.parametrize("geom", [LineString([(X0, Y0), (X0 + 10, Y0 + 10)]), Point(X0, Y0)])
def test_polygon_kinds_reject_lines_and_points(tmp_path, catalogue, work_crs, geom):
    path = tmp_path / "lines.gpkg"
    gpd.GeoDataFrame({"id": ["L1"]}, geometry=[geom], crs=4548).to_file(path)
    with pytest.raises(GeometryTypeError, match="L1"):
        _read(path, catalogue, work_crs)


def test_ids_fall_back_to_row_numbers_when_not_unique(tmp_path, catalogue, work_crs, red_frame):
    path = tmp_path / "dup.gpkg"
    red_frame.assign(BSM=[1, 1, 2]).to_file(path)
    layer = _read(path, catalogue, work_crs)
    assert list(layer.frame["feature_id"]) == ["1", "2", "3"]
    assert list(layer.frame["BSM"]) == [1, 1, 2]


def test_repairs_are_reported_per_feature(tmp_path, catalogue, work_crs):
    path = tmp_path / "repair.gpkg"
    gpd.GeoDataFrame({"fid_src": ["ok", "bow", "empty"]}, geometry=[square(0, 0, 10), BOW_TIE, None],
                     crs=4548).to_file(path)
    layer = _read(path, catalogue, work_crs)
    assert list(layer.frame["feature_id"]) == ["1", "2"]
    problems = {(r.feature_id, r.problem) for r in layer.repairs}
    assert problems == {("2", "invalid"), ("3", "empty")}
    assert layer.frame.geometry.is_valid.all()
    assert abs(layer.frame.geometry.area.sum() - (100.0 + 5_000.0)) < 0.01


def test_kmz(tmp_path, catalogue, work_crs, red_frame):
    kml = tmp_path / "doc.kml"
    red_frame.to_crs(4326).to_file(kml, driver="KML")
    with zipfile.ZipFile(tmp_path / "red.kmz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(kml, "doc.kml")
    layer = _read(tmp_path / "red.kmz", catalogue, work_crs)
    assert abs(layer.frame.geometry.area.sum() - KNOWN_AREA) < 0.01


def test_geopackage_inside_a_zip_with_a_named_layer(tmp_path, catalogue, work_crs, red_frame):
    gpkg = tmp_path / "plan.gpkg"
    red_frame.to_file(gpkg, layer="红线")
    red_frame.iloc[:1].to_file(gpkg, layer="农田")
    with zipfile.ZipFile(tmp_path / "plan.zip", "w") as archive:
        archive.write(gpkg, "plan.gpkg")
    with pytest.raises(AmbiguousLayerError, match="农田"):
        _read(tmp_path / "plan.zip", catalogue, work_crs)
    _assert_same_layer(_read(tmp_path / "plan.zip", catalogue, work_crs, layer="红线"), red_frame)


def test_bubiao_as_a_plan_layer(test_data, catalogue, work_crs):
    layer = read_layer(test_data / "bubiao" / "two_parcels_hole.txt", "urban_boundary", work_crs=work_crs,
                       catalogue=catalogue)
    assert len(layer.frame) == 2
    assert layer.meta["format"] == "部标 TXT"


def test_duplicate_parcel_ids_are_refused_not_renumbered(tmp_path, work_crs, red_frame):
    """Issue #16 defect 13: duplicates in a parcel-number column used to be replaced silently by the
    next id-like column (BSM), so the result named parcels by numbers the surveyor never gave."""
    path = tmp_path / "dup.gpkg"
    red_frame.assign(parcel_id=["A", "A", "B"]).to_file(path)
    with pytest.raises(DuplicateIdError, match="'A'"):
        read_parcels(path, work_crs=work_crs)
    red_frame.assign(fid_like=["A", "A", "B"]).to_file(tmp_path / "generic.gpkg")
    parcels = read_parcels(tmp_path / "generic.gpkg", work_crs=work_crs)
    assert parcels.frame["parcel_id"].is_unique
