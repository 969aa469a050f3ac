"""Classic CRS mistakes are caught and explained with the likely EPSG code; never silently accepted."""

from __future__ import annotations

import geopandas as gpd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer
from shapely.affinity import translate
from shapely.geometry import box

from layers.crs import diagnose_coordinates, gauss_kruger, gk_epsg, resolve_crs, suggest_crs, to_work_crs
from layers.errors import CoordinatesOutOfRangeError, CRSConflictError, CRSMissingError
from layers.ingest import parcels_from_geojson, read_layer, read_parcels
from tests.geoms import WITH_HOLE, X0, Y0

PLAIN = (X0, Y0, X0 + 100, Y0 + 100)  # EPSG:4548 metres near Tongling
PREFIXED = (X0 + 39_000_000, Y0, X0 + 39_000_100, Y0 + 100)  # the same in EPSG:4527
LONLAT = (117.80, 30.90, 117.81, 30.91)


def _crs(code: int) -> CRS:
    return CRS.from_epsg(code)


def test_gk_epsg_codes():
    assert gk_epsg(3, zone=39) == 4527
    assert gk_epsg(3, central_meridian=117) == 4548
    assert gk_epsg(6, zone=20) == 4498
    assert gk_epsg(6, central_meridian=117) == 4509
    gk = gauss_kruger(_crs(4527))
    assert gk is not None and gk.prefix == 39 and gk.central_meridian == 117
    assert gauss_kruger(_crs(4490)) is None


def test_correct_data_passes():
    assert diagnose_coordinates(PLAIN, _crs(4548)) == []
    assert diagnose_coordinates(PREFIXED, _crs(4527)) == []
    assert diagnose_coordinates(LONLAT, _crs(4490)) == []


def test_lon_lat_swapped():
    swapped = (30.90, 117.80, 30.91, 117.81)
    with pytest.raises(CoordinatesOutOfRangeError, match="swapped"):
        diagnose_coordinates(swapped, _crs(4326), source="p.geojson")


def test_swapped_geojson_file_is_refused(layer_data, work_crs):
    with pytest.raises(CoordinatesOutOfRangeError) as err:
        read_parcels(layer_data / "swapped_latlon.geojson", work_crs=work_crs)
    assert "swapped_latlon.geojson" in err.value.user_message
    assert "longitude and latitude are swapped" in err.value.user_message


def test_prefixed_eastings_labelled_without_prefix():
    with pytest.raises(CoordinatesOutOfRangeError, match=r"zone prefix 39.*EPSG:4527"):
        diagnose_coordinates(PREFIXED, _crs(4548))


def test_plain_eastings_labelled_with_prefix():
    with pytest.raises(CoordinatesOutOfRangeError, match=r"no zone prefix.*EPSG:4548"):
        diagnose_coordinates(PLAIN, _crs(4527))


def test_prefix_disagrees_with_declared_zone():
    zone40 = (X0 + 40_000_000, Y0, X0 + 40_000_100, Y0 + 100)
    with pytest.raises(CRSConflictError, match=r"prefix 40.*zone 39.*EPSG:4528"):
        diagnose_coordinates(zone40, _crs(4527))


def test_coordinates_outside_the_declared_zone():
    far_west = (150_000.0, Y0, 150_100.0, Y0 + 100)  # 350 km west of CM 117°E: about 113.4°E
    with pytest.raises(CoordinatesOutOfRangeError, match="outside the declared zone"):
        diagnose_coordinates(far_west, _crs(4548))


def test_gk_x_and_y_swapped():
    swapped = (Y0, X0, Y0 + 100, X0 + 100)  # surveying order: X = northing first
    with pytest.raises(CoordinatesOutOfRangeError, match="X and Y are swapped"):
        diagnose_coordinates(swapped, _crs(4548))


def test_web_mercator_labelled_as_geographic():
    merc = (13_113_000.0, 3_620_000.0, 13_114_000.0, 3_621_000.0)
    for code in (4326, 4490):
        with pytest.raises(CoordinatesOutOfRangeError, match=r"Web-Mercator.*EPSG:3857"):
            diagnose_coordinates(merc, _crs(code))


def test_gk_metres_labelled_as_geographic_suggest_the_zone():
    with pytest.raises(CoordinatesOutOfRangeError, match="EPSG:4527"):
        diagnose_coordinates(PREFIXED, _crs(4490))


def test_degrees_labelled_as_gk():
    with pytest.raises(CoordinatesOutOfRangeError, match="EPSG:4490"):
        diagnose_coordinates(LONLAT, _crs(4548))


def test_suggestions_for_unlabelled_data():
    assert "EPSG:4527" in suggest_crs(PREFIXED)
    assert "EPSG:4548" in suggest_crs(PLAIN)
    assert "EPSG:4490" in suggest_crs(LONLAT)
    assert "EPSG:3857" in suggest_crs((13_113_000.0, 3_620_000.0, 13_114_000.0, 3_621_000.0))


def test_missing_crs_is_an_error_with_a_suggestion():
    with pytest.raises(CRSMissingError, match="EPSG:4527"):
        resolve_crs(None, None, bounds=PREFIXED, source="x.csv")
    chosen, notes = resolve_crs(None, _crs(4527), bounds=PREFIXED, source="x.csv")
    assert chosen.to_epsg() == 4527 and "declared" in notes[0]


def test_declared_crs_conflicting_with_the_file():
    with pytest.raises(CRSConflictError, match=r"EPSG:4527.*EPSG:4548"):
        resolve_crs(_crs(4527), _crs(4548), bounds=PREFIXED, source="x.gpkg")


def test_declared_wrong_crs_for_unlabelled_file_is_caught(tmp_path, catalogue, work_crs):
    path = tmp_path / "plan.csv"
    path.write_text(f'wkt\n"{translate(WITH_HOLE, 39_000_000).wkt}"\n', encoding="utf-8")
    with pytest.raises(CoordinatesOutOfRangeError, match="EPSG:4527"):
        read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue, crs="EPSG:4548")
    layer = read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue, crs="EPSG:4527")
    assert abs(layer.frame.geometry.area.iloc[0] - 7_500.0) < 0.01


def test_wrongly_labelled_file_is_refused(tmp_path, catalogue, work_crs):
    path = tmp_path / "mislabelled.gpkg"
    # zone-prefixed coordinates stored under the plain CM 117°E label
    gpd.GeoDataFrame(geometry=[translate(WITH_HOLE, 39_000_000)], crs=4548).to_file(path)
    with pytest.raises(CoordinatesOutOfRangeError) as err:
        read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue)
    assert "mislabelled.gpkg" in err.value.user_message and "EPSG:4527" in err.value.user_message


def test_geojson_without_crs_member_can_be_declared(tmp_path, catalogue, work_crs):
    path = tmp_path / "legacy.geojson"
    gpd.GeoDataFrame(geometry=[WITH_HOLE], crs=4548).to_file(path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"crs"', '"not_crs"'), encoding="utf-8")  # drop the crs member
    with pytest.raises(CoordinatesOutOfRangeError, match="metres"):
        read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue)
    layer = read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue, crs="EPSG:4548")
    assert abs(layer.frame.geometry.area.iloc[0] - 7_500.0) < 0.01


def test_area_round_trip_4527_to_4548(work_crs):
    frame = gpd.GeoDataFrame(geometry=[WITH_HOLE, box(X0, Y0, X0 + 333.3, Y0 + 77.7)], crs=4548)
    back = to_work_crs(frame.to_crs(4527), work_crs)
    assert (abs(back.geometry.area - frame.geometry.area) < 0.01).all()


# ---------------------------------------------------------------- GeoJSON objects (API edge)


def _feature(coords, **props):
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [coords]}}


def test_parcels_from_geojson_rfc7946(work_crs):
    square = gpd.GeoSeries([WITH_HOLE], crs=4548).to_crs(4326).iloc[0]
    obj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "A-1", "properties": {"名称": "地块一"},
         "geometry": square.__geo_interface__}]}
    parcels = parcels_from_geojson(obj, work_crs=work_crs)
    assert parcels.crs_in == "EPSG:4326"
    assert list(parcels.frame["parcel_id"]) == ["A-1"]
    assert list(parcels.frame["name"]) == ["地块一"]
    assert abs(parcels.frame.geometry.area.iloc[0] - 7_500.0) < 0.01
    assert len(parcels.checksum) == 64


def test_parcels_from_geojson_legacy_crs(layer_data, work_crs):
    import json

    obj = json.loads((layer_data / "legacy_crs_4548.geojson").read_text(encoding="utf-8"))
    parcels = parcels_from_geojson(obj, work_crs=work_crs)
    assert parcels.crs_in == "EPSG:4548"
    assert list(parcels.frame["parcel_id"]) == ["DK-01"]
    assert list(parcels.frame["name"]) == ["示范地块"]
    assert parcels.frame.geometry.area.iloc[0] == 10_000.0
    obj["crs"] = {"type": "name", "properties": {"name": "EPSG:4490"}}
    with pytest.raises(CoordinatesOutOfRangeError, match="metres"):
        parcels_from_geojson(obj, work_crs=work_crs)


def test_parcels_from_geojson_swapped_axes(work_crs):
    obj = _feature([[30.90, 117.80], [30.90, 117.81], [30.91, 117.81], [30.90, 117.80]])
    with pytest.raises(CoordinatesOutOfRangeError, match="swapped"):
        parcels_from_geojson(obj, work_crs=work_crs)


def test_parcels_from_geojson_bad_objects(work_crs):
    from layers.errors import FileTooLargeError, UnreadableLayerError
    from layers.model import Limits

    with pytest.raises(UnreadableLayerError, match="type"):
        parcels_from_geojson({"features": []}, work_crs=work_crs)
    with pytest.raises(UnreadableLayerError, match="feature 1"):
        parcels_from_geojson({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": "x"}}]},
            work_crs=work_crs)
    many = {"type": "FeatureCollection", "features": [_feature([[117.8, 30.9], [117.81, 30.9],
                                                                [117.81, 30.91], [117.8, 30.9]])] * 3}
    with pytest.raises(FileTooLargeError, match="3 features"):
        parcels_from_geojson(many, work_crs=work_crs, limits=Limits(max_features=2))


def test_zone_width_of_shared_central_meridians():
    assert gauss_kruger(_crs(4548)).zone_width == 3  # 3-degree CM 117E
    assert gauss_kruger(_crs(4509)).zone_width == 6  # 6-degree CM 117E: same CM, wider zone
    esri = CRS.from_wkt(_crs(4548).to_wkt("WKT1_ESRI"))  # as a .prj carries it
    assert gauss_kruger(esri).zone_width == 3
    # 2.4° west of CM 117E (about 114.6°E): inside the 6-degree zone, outside the 3-degree one
    west = (270_000.0, Y0, 270_100.0, Y0 + 100)
    assert diagnose_coordinates(west, _crs(4509)) == []
    with pytest.raises(CoordinatesOutOfRangeError, match="outside the declared zone"):
        diagnose_coordinates(west, _crs(4548))


def test_esri_prj_crs_equals_its_epsg_code():
    from layers.crs import crs_label, same_crs

    esri = CRS.from_wkt(_crs(4527).to_wkt("WKT1_ESRI"))
    assert same_crs(esri, _crs(4527))
    assert crs_label(esri) == "EPSG:4527"
    assert not same_crs(esri, _crs(4548))


# ---------------------------------------------------------------- properties over all of China


@settings(max_examples=60, deadline=None)
@given(lon=st.floats(75.0, 134.9), lat=st.floats(18.0, 53.0))
def test_correct_gk_data_is_accepted_and_swaps_are_caught_everywhere(lon, lat):
    zone = round(lon / 3)
    for epsg in (gk_epsg(3, zone=zone), gk_epsg(3, central_meridian=3 * zone)):
        x, y = Transformer.from_crs(4490, epsg, always_xy=True).transform(lon, lat)
        bounds = (x, y, x + 50, y + 50)
        assert diagnose_coordinates(bounds, _crs(epsg)) == []
        with pytest.raises(CoordinatesOutOfRangeError):
            diagnose_coordinates((y, x, y + 50, x + 50), _crs(epsg))
    with pytest.raises(CoordinatesOutOfRangeError):
        diagnose_coordinates((lat, lon, lat + 0.01, lon + 0.01), _crs(4490))
    assert diagnose_coordinates((lon, lat, lon + 0.01, lat + 0.01), _crs(4490)) == []


def test_declared_crs_overrides_a_file_crs_the_coordinates_disprove(tmp_path, catalogue, work_crs):
    path = tmp_path / "wrong_prj.gpkg"
    gpd.GeoDataFrame(geometry=[translate(WITH_HOLE, 39_000_000)], crs=4548).to_file(path)
    layer = read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue, crs="EPSG:4527")
    assert layer.crs_in == "EPSG:4527"
    assert any("overriding the file's EPSG:4548" in n for n in layer.notes)
    assert abs(layer.frame.geometry.area.iloc[0] - 7_500.0) < 0.01
    # a declared CRS that fits no better than the file's stays a conflict
    with pytest.raises(CRSConflictError):
        read_layer(path, "urban_boundary", work_crs=work_crs, catalogue=catalogue, crs="EPSG:4528")


def test_one_transformer_cache_serves_ingest_and_checks():
    """layers.crs.transformer is the one cache: GeoJSON ingestion and checks.areas share its objects."""
    import checks.areas
    import checks.batch_fast
    import layers.ingest
    from layers.crs import CGCS2000, transformer

    assert checks.areas.transformer is transformer and checks.batch_fast.transformer is transformer
    assert not hasattr(layers.ingest, "_transformer")
    work = CRS.from_epsg(4548)
    assert transformer(work, CGCS2000) is transformer(CRS.from_epsg(4548), CGCS2000)
