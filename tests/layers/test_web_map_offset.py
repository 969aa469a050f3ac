"""GCJ-02 / BD-09 input (issue #11): refused with words when it is read as WGS 84, converted exactly when
declared. The real file is 义安区 (Tongling) as 高德 publishes it, in GCJ-02 (tests/data/layers/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import eviltransform
import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import box, mapping, shape
from typer.testing import CliRunner

from checks.engine import Screener
from checks.errors import ParcelOutsideCityError
from layers.crs import parse_crs
from layers.errors import WebMapOffsetError
from layers.ingest import parcels_from_geojson, read_layer, read_parcels
from layers.web_offsets import undo_offset
from tests.checks.conftest import make_blueprint

GCJ_FILE = Path(__file__).resolve().parents[1] / "data" / "layers" / "yian_gcj02.geojson"


def gcj_doc(*, keep_source: bool) -> dict:
    doc = json.loads(GCJ_FILE.read_text(encoding="utf-8"))
    if not keep_source:
        for feature in doc["features"]:
            feature["properties"].pop("source")
    return doc


def test_the_real_gcj02_file_read_as_wgs84_is_refused_naming_gcj02(work_crs):
    with pytest.raises(WebMapOffsetError) as caught:
        read_parcels(GCJ_FILE, work_crs=work_crs)
    assert caught.value.code == "crs_web_map_offset"
    message = caught.value.user_message
    assert "yian_gcj02.geojson" in message and "'source' says '高德'" in message
    assert "--crs GCJ02" in message
    # the same through the approval system's GeoJSON entry
    with pytest.raises(WebMapOffsetError):
        parcels_from_geojson(gcj_doc(keep_source=True), work_crs=work_crs)


def test_declared_gcj02_is_converted_exactly_and_noted(work_crs):
    parcels = read_parcels(GCJ_FILE, work_crs=work_crs, crs="GCJ02")
    assert any("GCJ-02" in n and "exact inverse" in n for n in parcels.notes)
    assert parcels.crs_in == "EPSG:4326"
    converted = parcels.frame.to_crs(4326).geometry.iloc[0]
    original = shape(gcj_doc(keep_source=True)["features"][0]["geometry"])
    got = shapely.get_coordinates(converted)
    # eviltransform's own iterative inverse (threshold 1e-6°) agrees to ≈0.1 m; ours re-encodes exactly
    for (lon, lat), (glon, glat) in list(zip(got, shapely.get_coordinates(original), strict=True))[:50]:
        wlat, wlon = eviltransform.gcj2wgs_exact(glat, glon)
        assert abs(wlat - lat) < 2e-6 and abs(wlon - lon) < 2e-6
        back_lat, back_lon = eviltransform.wgs2gcj(lat, lon)
        assert abs(back_lat - glat) < 1e-8 and abs(back_lon - glon) < 1e-8  # 1e-8° ≈ 1 mm
    # the shift moved the outline by a GCJ-typical few hundred metres
    shift = np.hypot(*(shapely.get_coordinates(gpd.GeoSeries([original], crs=4326).to_crs(4548).iloc[0])
                       - shapely.get_coordinates(parcels.frame.geometry.iloc[0])).T)
    assert 100 < float(np.median(shift)) < 700


def test_declared_bd09_is_converted_exactly(work_crs):
    wgs = box(117.80, 30.90, 117.82, 30.92)

    def to_bd(xy):
        return np.array([eviltransform.wgs2bd(lat, lon)[::-1] for lon, lat in xy])

    bd = shapely.transform(wgs, to_bd)
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"parcel_id": "B1"}, "geometry": mapping(bd)}]}
    assert undo_offset(np.array([bd], dtype=object), "BD09")[0].equals_exact(wgs, 1e-9)
    path = Path(__file__).parent / "_bd09.geojson"
    try:
        path.write_text(json.dumps(doc), encoding="utf-8")
        parcels = read_parcels(path, work_crs=work_crs, crs="bd-09")
    finally:
        path.unlink(missing_ok=True)
    assert parcels.frame.to_crs(4326).geometry.iloc[0].equals_exact(wgs, 1e-9)
    assert any("BD-09" in n for n in parcels.notes)


def test_an_explicit_wgs84_declaration_overrides_the_hint(work_crs):
    parcels = read_parcels(GCJ_FILE, work_crs=work_crs, crs="EPSG:4326")
    assert parcels.frame.geometry.iloc[0].area > 0


def test_datav_layout_is_a_gcj02_hint(work_crs):
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "adcode": 340706, "name": "义安区", "center": [117.79, 30.95], "centroid": [117.9, 30.9],
        "parent": {"adcode": 340700}}, "geometry": mapping(box(117.8, 30.9, 117.81, 30.91))}]}
    with pytest.raises(WebMapOffsetError, match="DataV"):
        parcels_from_geojson(doc, work_crs=work_crs)


def test_parse_crs_names_the_offset_datums():
    assert parse_crs("GCJ-02").offset == "GCJ02" and parse_crs("bd09").offset == "BD09"
    assert parse_crs("GCJ02").to_epsg() == 4326


@pytest.fixture(scope="module")
def rules():
    from checks.rules import load_rules
    from layers.catalogue import load_catalogue

    return load_rules(None, load_catalogue())


@pytest.fixture(scope="module")
def tongling_wgs84():
    """The real city outline (cnmaps / 高德, GCJ-02) moved to WGS 84 with eviltransform's own inverse,
    as a one-piece blueprint in the working CRS."""
    from data.generate import gcj_to_wgs

    cnmaps = pytest.importorskip("cnmaps")
    city = cnmaps.get_adm_maps(city="铜陵市", level="市", record="first", only_polygon=True, wgs84=False)
    outline = shapely.make_valid(gcj_to_wgs(city.geom))
    # 20 m wider: the district and city records of the source do not share their edges exactly
    # (3,018 m² of the converted 义安区 lie just outside the converted city); GCJ-02 shifts ~500 m
    return gpd.GeoSeries([outline], crs=4326).to_crs(4548).buffer(20).iloc[0]


def test_screening_spots_gcj02_parcels_by_their_offset_to_the_city(tongling_wgs84, rules, catalogue,
                                                                    work_crs):
    """No attribute says 高德 here: the 3.7 % of 义安区 that falls outside the city as WGS 84, and not
    at all once moved from GCJ-02, gives it away."""
    screener = Screener(make_blueprint([("P1", ["urban_space"], tongling_wgs84)]), rules, catalogue)
    as_wgs84 = parcels_from_geojson(gcj_doc(keep_source=False), work_crs=work_crs)
    with pytest.raises(WebMapOffsetError, match=r"parcel 340706 lies .* m² outside .* GCJ02"):
        screener.screen(as_wgs84, "public_facility")
    declared = read_parcels(GCJ_FILE, work_crs=work_crs, crs="GCJ02")
    parcel = screener.screen(declared, "public_facility")["parcels"][0]
    lonlat = declared.frame.to_crs(4490).geometry.iloc[0]
    reference = abs(Geod(ellps="GRS80").geometry_area_perimeter(lonlat)[0])
    assert parcel["ellipsoidal_area_m2"] == pytest.approx(reference, rel=1e-9)
    assert parcel["ellipsoidal_area_m2"] == pytest.approx(806e6, rel=0.01)  # 义安区 ≈ 806 km² here


def test_cli_convert_refuses_then_converts_with_crs_gcj02(tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    from cli.main import build_app

    app, runner = build_app(), CliRunner()
    refused = runner.invoke(app, ["parcels", "convert", str(GCJ_FILE), str(tmp_path / "y.gpkg")])
    assert refused.exit_code == 3
    assert json.loads(refused.stdout)["error"]["code"] == "crs_web_map_offset"
    target = str(tmp_path / "y.gpkg")
    done = runner.invoke(app, ["parcels", "convert", str(GCJ_FILE), target, "--crs", "GCJ02"])
    assert done.exit_code == 0, done.output
    assert any("GCJ-02" in n for n in json.loads(done.stdout[done.stdout.index("{"):])["notes"])


def test_blueprint_build_refuses_a_gcj02_layer_read_as_wgs84(tongling_wgs84, tmp_path, work_crs):
    """A plan layer in lon/lat that sticks 3.6 % out of the city and fits once moved from GCJ-02."""
    from blueprint.merge import build_blueprint
    from blueprint.precedence import load_precedence
    from layers.catalogue import load_catalogue

    catalogue = load_catalogue()
    city_file = tmp_path / "city.geojson"
    outline = gpd.GeoDataFrame({"名称": ["铜陵市"]}, geometry=[tongling_wgs84], crs=4548)
    outline.to_crs(4490).to_file(city_file)
    city = read_layer(city_file, "city_boundary", work_crs=work_crs, catalogue=catalogue)
    unmarked = tmp_path / "yian_urban.geojson"
    unmarked.write_text(json.dumps(gcj_doc(keep_source=False), ensure_ascii=False), encoding="utf-8")

    def build(layer):
        return build_blueprint([layer], catalogue=catalogue, precedence=load_precedence(None, catalogue),
                               tolerance_m=0.5, version="v1", boundary=city)

    as_wgs84 = read_layer(unmarked, "urban_boundary", work_crs=work_crs, catalogue=catalogue)
    with pytest.raises(WebMapOffsetError, match=r"layer 'yian_gcj02'.*3\.\d+% of its area .* GCJ02"):
        build(as_wgs84)
    declared = read_layer(unmarked, "urban_boundary", work_crs=work_crs, catalogue=catalogue, crs="GCJ02")
    assert build(declared).summary()["piece_count"] > 0


def test_parcels_declared_gcj02_that_leave_the_city_are_not_taken_for_gcj02_again(rules, catalogue, work_crs,
                                                                                   tmp_path, monkeypatch):
    """The reader undid the declared GCJ-02 already: parcels still outside the city are outside. Undoing
    the offset a second time told the planner to declare GCJ-02 (as they had) and screened the parcels
    twice more (22 of the 40 s a district outline took)."""
    def gcj(geom):
        return shapely.transform(geom, lambda xy: np.array(
            [eviltransform.wgs2gcj(lat, lon)[::-1] for lon, lat in xy]))

    inside = box(117.81, 30.93, 117.815, 30.935)  # WGS 84, Tongling
    city = gpd.GeoSeries([inside], crs=4326).to_crs(work_crs).buffer(50).iloc[0]
    screener = Screener(make_blueprint([("P1", ["urban_space"], city)]), rules, catalogue)
    path = tmp_path / "twice.geojson"  # one GCJ-02 shift too many: ≈ 500 m off the city once undone
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"parcel_id": "A1"}, "geometry": mapping(gcj(gcj(inside)))}]}),
        encoding="utf-8")
    declared = read_parcels(path, work_crs=work_crs, crs="GCJ02")
    passes = []
    overlaps = screener.overlaps
    monkeypatch.setattr(screener, "overlaps", lambda *a, **k: passes.append(1) or overlaps(*a, **k))
    with pytest.raises(ParcelOutsideCityError, match="parcel A1 lies"):
        screener.screen(declared, "public_facility")
    assert len(passes) <= 1  # none at all here: the parcel also leaves the pieces' bounding box
    assert declared.offset_undone == "GCJ02"
