"""checks.engine.Screener on the hand-made blueprint of conftest.py: rules, edges, areas, determinism."""

from __future__ import annotations

import dataclasses
import json

import geopandas as gpd
import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, shape

from checks.engine import Screener
from checks.errors import (
    DuplicateParcelIdError,
    NoParcelsError,
    ParcelOutsideCityError,
    UnknownProjectTypeError,
)
from checks.results import result_json
from layers.model import ParcelSet
from tests import geoms
from tests.checks.conftest import make_blueprint, parcels, rect


def hits(parcel: dict) -> dict[str, dict]:
    return {h["kind"]: h for h in parcel["conflicts"]}


def one(screener, geom, ptype):
    result = screener.screen(parcels(geom), ptype)
    assert len(result["parcels"]) == 1
    return result, result["parcels"][0]


# --- every rule outcome -------------------------------------------------------------------------

def test_allowed_inside_the_urban_boundary_passes(screener):
    result, p = one(screener, rect(210, 10, 260, 60), "industrial")
    assert result["verdict"] == p["verdict"] == "pass"
    rules = {k: h["rule"] for k, h in hits(p).items()}
    assert rules == {"urban_boundary": "allowed", "urban_space": "allowed"}
    assert hits(p)["urban_space"]["overlap_area_m2"] == pytest.approx(2500.0)
    assert hits(p)["urban_space"]["overlap_ratio"] == pytest.approx(1.0)


def test_forbidden_red_line_is_a_conflict_with_regulation(screener):
    result, p = one(screener, rect(10, 10, 60, 60), "industrial")
    assert result["verdict"] == "conflict"
    red = hits(p)["ecological_redline"]
    assert red["rule"] == "forbidden" and not red["below_tolerance"]
    assert red["overlap_area_m2"] == pytest.approx(2500.0)
    assert red["feature_ids"] == ["redline:P000001-eco"]
    assert red["name_zh"] == "生态保护红线"
    assert "三条控制线" in red["regulation"]["zh"]
    assert "生态保护红线" in p["explanation_zh"] and "2500.00 平方米" in p["explanation_zh"]
    assert "Ecological protection red line" in p["explanation_en"] and "forbidden" in p["explanation_en"]


def test_conditional_only_is_review(screener):
    result, p = one(screener, rect(10, 10, 60, 60), "linear_infrastructure")
    assert result["verdict"] == "review"
    assert hits(p)["ecological_redline"]["rule"] == "conditional"
    assert hits(p)["ecological_space"]["rule"] == "allowed"
    assert "outside_urban_boundary" not in hits(p)  # only derived for urban construction types


def test_national_major_on_farmland_is_review_citing_state_council(screener):
    _, p = one(screener, rect(110, 10, 160, 60), "national_major")
    assert p["verdict"] == "review"
    assert "国务院批准" in hits(p)["permanent_farmland"]["regulation"]["zh"]


def test_geohazard_needs_assessment(screener):
    _, p = one(screener, rect(310, 10, 360, 60), "public_facility")
    assert p["verdict"] == "review"
    assert hits(p)["geohazard_zone"]["rule"] == "conditional"
    assert "地质灾害危险性评估" in p["explanation_zh"]


def test_outside_urban_boundary_pseudo_kind(screener):
    geom = rect(310, 110, 360, 160)  # agricultural space, no urban boundary
    _, industrial = one(screener, geom, "industrial")
    _, residential = one(screener, geom, "residential")
    _, farm = one(screener, geom, "agricultural")
    assert industrial["verdict"] == "review"
    assert hits(industrial)["outside_urban_boundary"]["rule"] == "conditional"
    assert hits(industrial)["outside_urban_boundary"]["feature_ids"] == []
    assert residential["verdict"] == "conflict"
    assert hits(residential)["outside_urban_boundary"]["name_zh"] == "城镇开发边界外"
    assert farm["verdict"] == "pass" and "outside_urban_boundary" not in hits(farm)


# --- edges: touching, slivers, tolerance --------------------------------------------------------

def test_touching_an_edge_only_reports_nothing(screener):
    _, p = one(screener, rect(200, 0, 300, 100), "residential")  # shares x=200 with farmland
    assert p["verdict"] == "pass"
    assert set(hits(p)) == {"urban_boundary", "urban_space"}


def test_sliver_below_tolerance_is_review_not_conflict(screener):
    # 0.005 m × 100 m = 0.5 m² of farmland: below 1 m² and below 0.1 % of the parcel
    _, p = one(screener, rect(199.995, 10, 260, 110), "residential")
    farmland = hits(p)["permanent_farmland"]
    assert farmland["overlap_area_m2"] == pytest.approx(0.5, rel=1e-6)
    assert farmland["below_tolerance"] is True and farmland["rule"] == "forbidden"
    assert p["verdict"] == "review"
    assert "低于容差" in p["explanation_zh"] and "below the tolerance" in p["explanation_en"]


def test_overlap_above_the_area_tolerance_is_a_conflict(screener):
    _, p = one(screener, rect(198, 10, 260, 110), "residential")  # 200 m², ratio 3.2 %
    assert hits(p)["permanent_farmland"]["below_tolerance"] is False
    assert p["verdict"] == "conflict"


def test_tolerance_needs_both_measures(blueprint, rules, catalogue):
    # 0.5 m² is below 1 m², but on a 10 m² parcel it is 5 %: above the ratio tolerance → conflict
    strict = Screener(blueprint, rules, catalogue, tolerance_m2=1.0, tolerance_ratio=0.001)
    _, p = one(strict, rect(199.9, 10, 209.9, 11), "residential")
    farmland = hits(p)["permanent_farmland"]
    assert farmland["overlap_area_m2"] == pytest.approx(0.1, rel=1e-6)
    assert farmland["overlap_ratio"] == pytest.approx(0.01, rel=1e-6)
    assert p["verdict"] == "conflict"


# --- geometry shapes ----------------------------------------------------------------------------

def test_parcel_crossing_three_kinds_with_a_hole(screener):
    hole = Polygon(rect(95, 50, 205, 150).exterior.coords, [rect(100, 55, 200, 145).exterior.coords])
    _, p = one(screener, hole, "industrial")
    h = hits(p)
    assert p["area_m2"] == pytest.approx(110 * 100 - 100 * 90)
    assert h["ecological_redline"]["overlap_area_m2"] == pytest.approx(500.0)
    assert h["permanent_farmland"]["overlap_area_m2"] == pytest.approx(1000.0)
    assert h["urban_boundary"]["overlap_area_m2"] == pytest.approx(500.0)
    assert h["outside_urban_boundary"]["overlap_area_m2"] == pytest.approx(1500.0)
    assert h["outside_urban_boundary"]["piece_ids"] == ["P000001", "P000002"]
    farmland_geom = shape(h["permanent_farmland"]["geometry"])
    assert farmland_geom.geom_type == "MultiPolygon"  # the hole splits the farmland overlap in two strips


def test_hole_over_a_kind_means_no_overlap(screener):
    # the parcel surrounds the red line piece's strip [40,60] but its hole excludes it entirely
    donut = Polygon(rect(0, 0, 100, 100).exterior.coords, [rect(40, 40, 60, 60).exterior.coords])
    _, p = one(screener, donut, "linear_infrastructure")
    assert p["area_m2"] == pytest.approx(10000 - 400)
    assert hits(p)["ecological_redline"]["overlap_area_m2"] == pytest.approx(9600.0)


def test_multipart_parcel_is_one_parcel(screener):
    multi = MultiPolygon([rect(10, 10, 60, 60), rect(210, 10, 260, 60)])
    result, p = one(screener, multi, "industrial")
    assert p["area_m2"] == pytest.approx(5000.0)
    assert hits(p)["ecological_redline"]["overlap_ratio"] == pytest.approx(0.5)
    assert hits(p)["urban_space"]["overlap_ratio"] == pytest.approx(0.5)
    assert result["verdict"] == "conflict"


def test_bow_tie_is_repaired_and_the_repair_reported(screener):
    _, p = one(screener, geoms.BOW_TIE, "linear_infrastructure")
    assert p["area_m2"] == pytest.approx(5000.0)
    assert [r["problem"] for r in p["repairs"]] == ["invalid"]
    assert p["repairs"][0]["action"] == "make_valid"
    assert hits(p)["ecological_redline"]["overlap_area_m2"] == pytest.approx(5000.0)


def test_dropped_parcels_are_reported_at_submission_level(screener):
    result = screener.screen(parcels(rect(10, 10, 20, 20), Polygon(), ids=["a", "b"]), "industrial")
    assert [p["parcel_id"] for p in result["parcels"]] == ["a"]
    assert [(r["feature_id"], r["problem"]) for r in result["repairs"]] == [("b", "empty")]


def test_repair_keeps_missing_names_missing(screener):
    """A parcel without a name beside one that needs repair: no NaN name (it made result_json fail)."""
    frame = gpd.GeoDataFrame({"parcel_id": ["a", "b"], "name": ["甲", None]},
                             geometry=[geoms.BOW_TIE, rect(210, 10, 260, 60)], crs="EPSG:4548")
    result = screener.screen(ParcelSet(frame=frame, source="test.geojson"), "linear_infrastructure")
    by_id = {p["parcel_id"]: p for p in result["parcels"]}
    assert by_id["a"]["name"] == "甲" and "name" not in by_id["b"]
    assert [r["problem"] for r in by_id["a"]["repairs"]] == ["invalid"]
    assert json.loads(result_json(result))["parcels"][1]["parcel_id"] == "b"


def test_screen_takes_lonlat_frames_and_any_geometry_column_name(screener):
    """The fast column access in Screener._submitted: reprojected input and a renamed geometry column."""
    base = screener.screen(parcels(rect(210, 10, 260, 60), ids=["x"]), "industrial")
    frame = gpd.GeoDataFrame({"parcel_id": ["x"], "shape": [rect(210, 10, 260, 60)]}, geometry="shape",
                             crs="EPSG:4548")
    assert result_json(screener.screen(ParcelSet(frame=frame, source="t"), "industrial")) == result_json(base)


def test_reprojected_input_gives_the_same_areas(screener):
    local = parcels(rect(210, 10, 260, 60))
    lonlat = parcels(*local.frame.to_crs(4490).geometry, crs="EPSG:4490")
    a = screener.screen(local, "industrial")["parcels"][0]
    b = screener.screen(lonlat, "industrial")["parcels"][0]
    assert b["area_m2"] == pytest.approx(a["area_m2"], rel=1e-9)


# --- bad input ----------------------------------------------------------------------------------

def test_parcel_outside_the_city_is_an_error_naming_it(screener):
    with pytest.raises(ParcelOutsideCityError, match=r"parcel far .*outside the city extent of blueprint v1"):
        screener.screen(parcels(rect(10, 10, 20, 20), rect(380, 10, 430, 60), ids=["ok", "far"]),
                        "industrial")
    with pytest.raises(ParcelOutsideCityError, match="parcel 1"):
        screener.screen(parcels(rect(5000, 5000, 5100, 5100)), "industrial")


def test_tiny_overhang_below_tolerance_is_accepted(screener):
    _, p = one(screener, rect(350, 10, 400.005, 110), "public_facility")  # 0.5 m² beyond x = 400
    assert p["area_m2"] == pytest.approx(5000.5)


def test_unknown_project_type(screener):
    with pytest.raises(UnknownProjectTypeError, match="valid project types: industrial, residential"):
        screener.screen(parcels(rect(10, 10, 20, 20)), "casino")


def test_duplicate_and_missing_ids(screener):
    with pytest.raises(DuplicateParcelIdError, match="parcel_id 'x'"):
        screener.screen(parcels(rect(10, 10, 20, 20), rect(30, 30, 40, 40), ids=["x", "x"]), "industrial")
    with pytest.raises(NoParcelsError):
        screener.screen(parcels(Polygon()), "industrial")


# --- determinism and output ---------------------------------------------------------------------

def test_byte_identical_json_and_stable_order(screener, blueprint, rules, catalogue):
    shapes = [rect(50, 50, 250, 150), rect(210, 10, 260, 60), geoms.BOW_TIE]
    first = result_json(screener.screen(parcels(*shapes, ids=["10", "2", "1"]), "industrial"))
    fresh = Screener(blueprint, rules, catalogue)  # a new screener, same version
    second = result_json(fresh.screen(parcels(*reversed(shapes), ids=["1", "2", "10"]), "industrial"))
    assert first == second
    doc = json.loads(first)
    assert [p["parcel_id"] for p in doc["parcels"]] == ["1", "2", "10"]
    assert doc["check_id"].startswith("chk_") and len(doc["check_id"]) == 20
    other = screener.screen(parcels(*shapes, ids=["10", "2", "1"]), "residential")
    assert other["check_id"] != doc["check_id"]
    assert screener.screen(parcels(shapes[0]), "industrial", check_id="chk_given")["check_id"] == "chk_given"


def test_result_contract_and_geojson_output(screener):
    result = screener.screen(parcels(rect(50, 50, 250, 150)), "industrial")
    assert list(result)[:5] == ["check_id", "blueprint_version", "project_type", "verdict", "parcels"]
    parcel = result["parcels"][0]
    for key in ("parcel_id", "area_m2", "ellipsoidal_area_m2", "verdict", "conflicts", "repairs",
                "explanation_zh", "explanation_en"):
        assert key in parcel
    for hit in parcel["conflicts"]:
        for key in ("kind", "name_zh", "name_en", "rule", "overlap_area_m2", "overlap_ellipsoidal_area_m2",
                    "overlap_ratio", "feature_ids", "geometry"):
            assert key in hit
        lon, lat = np.asarray(hit["geometry"]["coordinates"][0]).T
        assert 116.9 < lon.min() and lon.max() < 117.1 and 30.8 < lat.min() < 31.0
        ring = np.asarray(hit["geometry"]["coordinates"][0])
        signed = np.sum(ring[:-1, 0] * ring[1:, 1] - ring[1:, 0] * ring[:-1, 1])
        assert signed > 0  # RFC 7946: exterior rings counter-clockwise
    # forbidden hits come first, then conditional, then allowed
    order = [h["rule"] for h in parcel["conflicts"]]
    assert order == sorted(order, key=["forbidden", "conditional", "allowed"].index)
    assert result_json(result).isascii() is False  # Chinese stays readable (ensure_ascii=False)


@pytest.mark.parametrize("east_m", [0.0, 60_000.0])
def test_ellipsoidal_area_independently(screener, east_m):
    """Against pyproj's own geometry_area_perimeter after a geopandas reprojection, and against the
    Gauss-Krüger scale factor: plane / ellipsoidal ≈ k² with k ≈ 1 + x²/(2R²) at x metres off the CM."""
    geom = rect(east_m, 0, east_m + 1000, 1000)
    far = make_blueprint([("P1", ["urban_space"], geom.buffer(10))])
    s = Screener(far, screener.rules, screener.catalogue)
    p = s.screen(parcels(geom), "public_facility")["parcels"][0]
    lonlat = gpd.GeoSeries([geom], crs=4548).to_crs(4490).iloc[0]
    expected, _ = Geod(ellps="GRS80").geometry_area_perimeter(lonlat)
    assert p["ellipsoidal_area_m2"] == pytest.approx(abs(expected), rel=1e-9)
    x = east_m + 500.0
    k2 = (1 + x**2 / (2 * 6_371_000.0**2)) ** 2
    assert p["area_m2"] / p["ellipsoidal_area_m2"] == pytest.approx(k2, rel=2e-6)
    assert hits(p)["urban_space"]["overlap_ellipsoidal_area_m2"] == pytest.approx(abs(expected), rel=1e-9)


def test_big_prepared_piece_fast_paths_agree_with_the_overlay(rules, catalogue):
    """A many-vertex piece (prepared at build) containing the parcel, and a small piece inside one."""
    ring = rect(0, 0, 400, 200).buffer(50, quad_segs=32)  # > PREPARE_MIN_VERTICES vertices
    hole = rect(100, 50, 140, 90)
    big = Polygon(ring.exterior.coords, [hole.exterior.coords])
    screener = Screener(make_blueprint([("P1", ["agricultural_space"], big),
                                        ("P2", ["permanent_farmland"], hole)]), rules, catalogue)
    inside = rect(200, 20, 260, 80)  # strictly inside the big piece: no overlay needed
    around = rect(90, 40, 150, 100)  # contains the hole piece strictly, crosses nothing else
    result = screener.screen(parcels(inside, around, ids=["in", "around"]), "agricultural")
    by_id = {p["parcel_id"]: hits(p) for p in result["parcels"]}
    assert by_id["in"]["agricultural_space"]["overlap_area_m2"] == pytest.approx(3600.0)
    assert set(by_id["in"]) == {"agricultural_space"}
    assert by_id["around"]["permanent_farmland"]["overlap_area_m2"] == pytest.approx(1600.0)
    assert by_id["around"]["agricultural_space"]["overlap_area_m2"] == pytest.approx(3600.0 - 1600.0)
    assert shape(by_id["around"]["agricultural_space"]["geometry"]).geom_type == "Polygon"


def test_a_configured_outside_boundary_rule_applies_to_any_project_type(blueprint, catalogue):
    """Rules are configuration: 城镇开发边界外 forbidden for public facilities makes a conflict there,
    in the single check and in the batch table alike (not only for urban construction types)."""
    import tomllib
    from importlib import resources

    from checks.batch import screen_batch
    from checks.rules import parse_rules

    doc = tomllib.loads(resources.files("checks").joinpath("rules.toml").read_text(encoding="utf-8"))
    doc["kinds"]["outside_urban_boundary"]["public_facility"] = {
        "outcome": "forbidden", "regulation": "outside_boundary_prohibited"}
    strict = Screener(blueprint, parse_rules(doc, catalogue, "test rules"), catalogue)
    geom = rect(310, 110, 360, 160)  # agricultural space, outside the urban boundary
    _, p = one(strict, geom, "public_facility")
    assert p["verdict"] == "conflict"
    assert hits(p)["outside_urban_boundary"]["rule"] == "forbidden"
    table = screen_batch(parcels(geom).frame, strict, "public_facility")
    assert set(table["parcel_verdict"]) == {"conflict"}
    _, farm = one(strict, geom, "agricultural")  # still allowed (by default) there: not reported
    assert farm["verdict"] == "pass" and "outside_urban_boundary" not in hits(farm)


def test_check_id_depends_on_the_rules_the_result_quotes(blueprint, catalogue, rules):
    """Another rules file gives another result for the same parcels and version, so another check id
    (the CLI stores results by check id and refuses a second, different result under one id)."""
    import tomllib
    from importlib import resources

    from checks.rules import parse_rules

    doc = tomllib.loads(resources.files("checks").joinpath("rules.toml").read_text(encoding="utf-8"))
    doc["regulations"]["redline_prohibited"]["en"] = "Amended wording."
    amended = Screener(blueprint, parse_rules(doc, catalogue, "amended rules"), catalogue)
    same = Screener(blueprint, rules, catalogue)
    geom = rect(10, 10, 60, 60)
    a = Screener(blueprint, rules, catalogue).screen(parcels(geom), "industrial")
    assert same.screen(parcels(geom), "industrial")["check_id"] == a["check_id"]
    b = amended.screen(parcels(geom), "industrial")
    assert result_json(a) != result_json(b)
    assert a["check_id"] != b["check_id"]


# --- finer project types: requirements and the rules version in the result ---------------------

def test_a_conditional_verdict_lists_what_the_applicant_must_provide(screener):
    """A tourism facility in the red line (自然资发〔2022〕142号 一（一）第5项) is reviewed, not refused,
    and the result says what to provide, per hit and once for the whole submission."""
    result, p = one(screener, rect(10, 10, 60, 60), "tourism_facility")
    assert result["verdict"] == "review" and result["project_type"] == "tourism_facility"
    assert result["project_type_group"] == "public_facility"
    red = hits(p)["ecological_redline"]
    assert red["rule"] == "conditional"
    assert red["regulation"]["number"] == "自然资发〔2022〕142号"
    assert red["regulation"]["article"] == "一（一）第5项"
    keys = [n["key"] for n in red["requirements"]]
    assert "related_plan_conformity" in keys and all(n["zh"] and n["en"] for n in red["requirements"])
    top = {n["key"]: n for n in result["requirements"]}
    assert top["related_plan_conformity"]["parcel_ids"] == ["1"]
    assert "ecological_redline" in top["related_plan_conformity"]["kinds"]
    assert "须提供或取得" in p["explanation_zh"] and "must provide or obtain" in p["explanation_en"]
    assert "自然资发〔2022〕142号" in p["explanation_zh"]


def test_forbidden_and_allowed_hits_carry_no_requirements(screener):
    result, p = one(screener, rect(10, 10, 60, 60), "civic_facility")  # its group: forbidden there
    assert result["verdict"] == "conflict" and result["requirements"] == []
    assert all(h["requirements"] == [] for h in p["conflicts"] if h["rule"] != "conditional")


def test_the_result_records_the_rules_version(screener, rules):
    result, _ = one(screener, rect(210, 10, 260, 60), "industrial")
    assert result["rules"]["version"] == rules.meta.version
    assert result["rules"]["effective_date"] == rules.meta.effective_date


def test_group_and_finer_type_give_the_same_outcomes_where_the_rules_agree(screener):
    geom = rect(50, 50, 250, 150)
    group, _ = one(screener, geom, "industrial")
    finer, _ = one(screener, geom, "manufacturing")
    assert finer["verdict"] == group["verdict"]
    assert [(h["kind"], h["rule"]) for h in finer["parcels"][0]["conflicts"]] == \
        [(h["kind"], h["rule"]) for h in group["parcels"][0]["conflicts"]]
    assert finer["check_id"] != group["check_id"]  # the declared type is part of the submission


def test_a_parcel_beyond_the_city_box_is_refused_before_the_overlaps_are_built(screener, monkeypatch) -> None:
    """Half of this parcel lies beyond the pieces' bounding box: refused with the exact outside area, without
    building the hits (a whole country sent as a parcel took 220 s to be refused on the demo city). Parcels
    said to be longitude/latitude are tested for a web map's offset the same cheap way."""
    built: list[int] = []
    overlaps = screener.overlaps
    monkeypatch.setattr(screener, "overlaps", lambda *a, **k: built.append(1) or overlaps(*a, **k))
    with pytest.raises(ParcelOutsideCityError, match=r"parcel A lies 20000\.00 m² \(50\.00%\) outside"):
        screener.screen(parcels(rect(300, 0, 500, 200), ids=["A"]), "industrial")
    lonlat = dataclasses.replace(parcels(rect(300, 0, 500, 200), ids=["A"]), crs_in="EPSG:4326")
    with pytest.raises(ParcelOutsideCityError, match=r"parcel A lies 20000\.00 m² \(50\.00%\) outside"):
        screener.screen(lonlat, "industrial")
    assert built == []
    screener.screen(parcels(rect(300, 0, 350, 50), ids=["B"]), "industrial")  # inside: screened as always
    assert built == [1]


def test_a_blueprint_without_pieces_refuses_a_parcel_as_outside_not_with_a_crash(rules, catalogue):
    """A region of a bounded batch (or an empty draft) may hold no piece: the Screener still builds, and a
    parcel is outside the city — the domain error, not shapely's reduction error on an empty array."""
    empty = make_blueprint(pieces=[])
    screener = Screener(empty, rules, catalogue)
    with pytest.raises(ParcelOutsideCityError, match="parcel 1"):
        screener.screen(parcels(rect(10, 10, 20, 20)), "industrial")
