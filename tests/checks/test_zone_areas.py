"""Plane areas in each parcel's own 3° Gauss-Krüger zone (issue #11), checked against real and
generated 部标 files and an independent geodesic area (pyproj.Geod on the GRS80/CGCS2000 ellipsoid)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from pyproj import CRS, Geod
from shapely.geometry import Polygon, box, mapping

from checks.engine import Screener
from layers.ingest import parcels_from_geojson, read_parcels
from tests.checks.conftest import make_blueprint, parcels, rect

DATA = Path(__file__).resolve().parents[1] / "data" / "bubiao"
WORK = CRS.from_epsg(4548)  # CGCS2000 3° GK CM 117°E: zone 39
GEOD = Geod(ellps="GRS80")


def geodesic_area(frame: gpd.GeoDataFrame) -> float:
    """Independent reference: Karney's geodesic polygon area of the CGCS2000 lon/lat outline."""
    lonlat = frame.to_crs(4490).geometry.iloc[0]
    return abs(GEOD.geometry_area_perimeter(lonlat)[0])


def screener_around(frame: gpd.GeoDataFrame, rules, catalogue, kinds=("urban_space",)) -> Screener:
    b = frame.to_crs(WORK).total_bounds
    piece = box(b[0] - 500, b[1] - 500, b[2] + 500, b[3] + 500)
    return Screener(make_blueprint([("P1", list(kinds), piece)]), rules, catalogue)


def test_real_zone40_bubiao_area_is_the_surveyors_not_the_working_zones(rules, catalogue):
    """彭埠单元B/R-14地块 (Hangzhou, 120.2°E): the file declares 5.7089 公顷 in zone 40."""
    parcels_in = read_parcels(DATA / "pengbu_zone40.txt", work_crs=WORK)
    assert parcels_in.declared_zone == 40
    working_plane = float(parcels_in.frame.geometry.area.iloc[0])
    result = screener_around(parcels_in.frame, rules, catalogue).screen(parcels_in, "industrial")
    parcel = result["parcels"][0]

    reference = geodesic_area(parcels_in.frame)
    assert parcel["area_m2"] == pytest.approx(57_089.0, abs=1.0)  # the file's 地块面积 5.7089 公顷
    assert parcel["area_m2"] == pytest.approx(reference, rel=2e-5)  # 20 km off CM 120°E: k² − 1 ≈ 1e-5
    assert parcel["ellipsoidal_area_m2"] == pytest.approx(reference, rel=1e-9)
    assert working_plane / reference - 1 == pytest.approx(0.00235, abs=1e-4)  # what it used to report
    assert parcel["plane_zone"] == {"zone": 40, "central_meridian": 120, "crs": "EPSG:4549",
                                    "chosen_by": "declared"}
    # a kind covering the whole parcel reports the same own-zone area and ratio 1
    (hit,) = [h for h in parcel["conflicts"] if h["kind"] == "urban_space"]
    assert hit["overlap_area_m2"] == parcel["area_m2"] and hit["overlap_ratio"] == 1.0


def test_generated_zone35_parcel_from_geojson_takes_its_centroids_zone(rules, catalogue):
    bubiao = read_parcels(DATA / "generated_zone35.txt", work_crs=WORK)
    lonlat = bubiao.frame.to_crs(4326)
    feature = {"type": "Feature", "properties": {"parcel_id": "CD-35-01"},
               "geometry": mapping(lonlat.geometry.iloc[0])}
    doc = {"type": "FeatureCollection", "features": [feature]}
    from_geojson = parcels_from_geojson(doc, work_crs=WORK)
    assert from_geojson.declared_zone is None  # GeoJSON declares no zone: the centroid decides
    screener = screener_around(bubiao.frame, rules, catalogue)
    reference = geodesic_area(bubiao.frame)
    # ~90 km west of CM 105°E: the GK plane enlarges areas by k² with k ≈ 1 + x²/(2R²)
    x = bubiao.frame.to_crs(4544).geometry.iloc[0].centroid.x - 500_000.0
    k2 = (1 + x**2 / (2 * 6_371_000.0**2)) ** 2
    for submitted, chosen_by in ((bubiao, "declared"), (from_geojson, "centroid")):
        parcel = screener.screen(submitted, "industrial")["parcels"][0]
        assert parcel["plane_zone"]["zone"] == 35 and parcel["plane_zone"]["chosen_by"] == chosen_by
        assert parcel["plane_zone"]["crs"] == "EPSG:4544"
        assert parcel["area_m2"] / reference == pytest.approx(k2, rel=5e-6)
    # the working zone (12.9° away) would be 3.5 % too large
    assert float(bubiao.frame.geometry.area.iloc[0]) / reference - 1 > 0.034


def test_partial_overlap_of_a_foreign_zone_parcel_is_measured_in_its_zone(rules, catalogue):
    """Hits of a zone-40 parcel: the overlap's plane area in zone 40, ratio overlap / parcel there."""
    parcel_ll = Polygon([(120.20, 30.30), (120.21, 30.30), (120.21, 30.31), (120.20, 30.31)])
    frame = gpd.GeoDataFrame({"parcel_id": ["A"]}, geometry=[parcel_ll], crs=4490)
    west_ll = box(120.19, 30.29, 120.205, 30.32)  # red line over the western half
    pieces_work = gpd.GeoSeries([west_ll, box(120.205, 30.29, 120.22, 30.32)], crs=4490).to_crs(WORK)
    blueprint = make_blueprint([("P1", ["ecological_redline", "ecological_space"], pieces_work.iloc[0]),
                                ("P2", ["urban_space"], pieces_work.iloc[1])])
    result = Screener(blueprint, rules, catalogue).screen(parcels(*frame.to_crs(WORK).geometry), "industrial")
    parcel = result["parcels"][0]
    red = next(h for h in parcel["conflicts"] if h["kind"] == "ecological_redline")
    # the overlap is cut in the working plane (where the blueprint lives), then measured in zone 40
    parcel_work = frame.to_crs(WORK).geometry.iloc[0]
    west_work = gpd.GeoSeries([parcel_work.intersection(pieces_work.iloc[0])], crs=WORK)
    west_zone40 = west_work.to_crs(4549).area.iloc[0]
    whole_zone40 = frame.to_crs(4549).area.iloc[0]
    assert parcel["area_m2"] == pytest.approx(whole_zone40, abs=1e-4)
    assert red["overlap_area_m2"] == pytest.approx(west_zone40, rel=1e-7)
    assert red["overlap_ratio"] == pytest.approx(west_zone40 / whole_zone40, rel=1e-6)


def test_parcel_across_a_zone_line_uses_the_larger_parts_zone_and_reports_both(rules, catalogue):
    # 118.495..118.510°E: one third west of the 118.5°E line (zone 39), two thirds east (zone 40)
    ll = Polygon([(118.495, 31.30), (118.510, 31.30), (118.510, 31.31), (118.495, 31.31)])
    frame = gpd.GeoDataFrame({"parcel_id": ["X"]}, geometry=[ll], crs=4490)
    screener = screener_around(frame, rules, catalogue)
    parcel = screener.screen(parcels(*frame.to_crs(WORK).geometry, ids=["X"]), "industrial")["parcels"][0]
    zone = parcel["plane_zone"]
    assert zone["zone"] == 40 and zone["chosen_by"] == "larger_part" and zone["crs"] == "EPSG:4549"
    in39, in40 = frame.to_crs(4548).area.iloc[0], frame.to_crs(4549).area.iloc[0]
    assert zone["crosses_zone_line"] == {"39": pytest.approx(in39, abs=1e-4),
                                         "40": pytest.approx(in40, abs=1e-4)}
    assert parcel["area_m2"] == pytest.approx(in40, abs=1e-4)
    # the 部标 file of the same kind of parcel declares zone 39: its declared zone wins, both reported
    declared = read_parcels(DATA / "generated_zone_line.txt", work_crs=WORK)
    entry = screener_around(declared.frame, rules, catalogue).screen(declared, "industrial")["parcels"][0]
    assert entry["plane_zone"]["zone"] == 39 and entry["plane_zone"]["chosen_by"] == "declared"
    assert set(entry["plane_zone"]["crosses_zone_line"]) == {"39", "40"}
    assert entry["area_m2"] == pytest.approx(declared.frame.geometry.area.iloc[0], abs=1e-4)


def test_parcels_inside_the_working_zone_keep_their_areas_bit_for_bit(screener):
    geom = rect(50, 50, 250, 150)
    parcel = screener.screen(parcels(geom), "industrial")["parcels"][0]
    assert parcel["area_m2"] == round(geom.area, 4)
    assert parcel["plane_zone"] == {"zone": 39, "central_meridian": 117, "crs": "EPSG:4548",
                                    "chosen_by": "centroid"}


def test_convert_writes_bubiao_in_the_parcels_own_zone(tmp_path):
    from typer.testing import CliRunner

    from cli.main import build_app

    source = tmp_path / "hz.geojson"
    frame = read_parcels(DATA / "pengbu_zone40.txt", work_crs=WORK).frame.to_crs(4326)
    frame[["parcel_id", "geometry"]].to_file(source, driver="GeoJSON")
    out = tmp_path / "hz.txt"
    run = CliRunner().invoke(build_app(), ["parcels", "convert", str(source), str(out)])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert report["crs_out"] == "EPSG:4528" and report["area_zones"] == [40]
    assert report["area_m2"] == pytest.approx(57_089.5, abs=0.1)
    text = out.read_bytes().decode("gbk")
    assert "带号=40" in text and ",40520986.4770" in text  # the original eastings, to 0.1 mm


def test_batch_reports_the_same_own_zone_areas_as_the_single_check(rules, catalogue):
    from checks.batch import screen_batch

    declared = read_parcels(DATA / "pengbu_zone40.txt", work_crs=WORK)
    screener = screener_around(declared.frame, rules, catalogue)
    frame = declared.frame[["parcel_id", "geometry"]]
    single = screener.screen(parcels(*frame.geometry, ids=list(frame["parcel_id"])), "industrial")
    table = screen_batch(frame, screener, "industrial")
    parcel = single["parcels"][0]
    assert table["area_m2"].iloc[0] == parcel["area_m2"]
    by_kind = dict(zip(table["kind"], table["overlap_area_m2"], strict=True))
    for hit in parcel["conflicts"]:
        assert by_kind[hit["kind"]] == pytest.approx(hit["overlap_area_m2"], rel=2e-5)
