"""Planning conditions (控规地块) and regional assessments (区域评估) of screened parcels, hand-computed.

Layout in metres from tests.geoms (X0, Y0), EPSG:4548, city = [0, 400] × [0, 200]:

    red line         [0, 50]    × [0, 200]
    urban boundary   [100, 400] × [0, 200]
    plan A 0701      [100, 200] × [0, 100]   FAR 1.0–2.5, density ≤ 30 %, green ≥ 35 %, height ≤ 60 m
    plan B 1001      [200, 300] × [0, 100]   FAR ≤ 1.5, density ≤ 50 %, green ≥ 20 %, height ≤ 24 m
    plan C 0901      [0, 100]   × [100, 200] commercial outside the boundary, half of it on the red line
    plan E 0703      [50, 100]  × [0, 100]   rural homestead: may lie outside the boundary
    geohazard  (valid 2024-01-01 … 2029-12-31)  [100, 300] × [0, 100]
    mineral    (valid 2020-01-01 … 2023-12-31)  [100, 200] × [0, 100]
    soil_water (valid 2024-01-01 … no expiry)   [100, 200] × [0, 100]

Parcel P1 = [150, 250] × [20, 80] (6,000 m²) overlaps A and B by 3,000 m² each.
Parcel P2 = [120, 180] × [20, 80] (3,600 m²) lies in A only.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import geopandas as gpd
import pytest

from blueprint.merge import build_blueprint
from blueprint.precedence import load_precedence
from checks.conditions import Declared, load_compatibility, parse_declared
from checks.engine import Screener
from checks.errors import InvalidDeclaredError
from checks.results import result_json
from checks.rules import load_rules
from layers.catalogue import load_catalogue
from layers.ingest import with_attributes
from layers.model import PlanLayer
from tests.checks.conftest import parcels, rect

DAY = dt.date(2026, 6, 1)
P1 = rect(150, 20, 250, 80)
P2 = rect(120, 20, 180, 80)


def _layer(kind: str, geoms: list[Any], attrs: dict[str, list[Any]] | None = None) -> PlanLayer:
    frame = gpd.GeoDataFrame(
        {"feature_id": [chr(65 + i) for i in range(len(geoms))], **(attrs or {})},
        geometry=geoms,
        crs="EPSG:4548",
    )
    plan = PlanLayer(
        kind=kind, name=kind, source=f"{kind}.shp", checksum=f"sha-{kind}", crs_in="EPSG:4548", frame=frame
    )
    return with_attributes(plan, load_catalogue(), None)


@pytest.fixture(scope="module")
def blueprint():
    catalogue = load_catalogue()
    plan = _layer(
        "detailed_plan",
        [
            rect(100, 0, 200, 100),
            rect(200, 0, 300, 100),
            rect(0, 100, 100, 200),
            rect(400, 400, 401, 401),
            rect(50, 0, 100, 100),
        ],
        {
            "YDDM": ["0701", "1001", "0901", "0701", "0703"],
            "RJL": [2.5, 1.5, 3.0, 1.0, 0.8],
            "RJLXX": [1.0, None, None, None, None],
            "JZMD": [30, 50, 40, 30, 40],
            "LDL": [35, 20, 20, 30, 10],
            "JZXG": [60, 24, 50, 10, 12],
        },
    )
    docs = _layer(
        "regional_assessment",
        [rect(100, 0, 300, 100), rect(100, 0, 200, 100), rect(100, 0, 200, 100)],
        {
            "PGLX": ["geohazard", "压覆重要矿产资源评估", "soil_water"],
            "WH": ["铜政〔2024〕1号", "铜政〔2020〕2号", "铜水〔2024〕3号"],
            "PZRQ": ["2024-01-01", "2020-01-01", "2024-01-01"],
            "YXQZ": ["2029-12-31", "2023-12-31", None],
        },
    )
    layers = [
        _layer("city_boundary", [rect(0, 0, 400, 200)]),
        _layer("urban_boundary", [rect(100, 0, 400, 200)]),
        _layer("ecological_redline", [rect(0, 0, 50, 200)]),
        plan,
        docs,
    ]
    return build_blueprint(
        layers,
        catalogue=catalogue,
        precedence=load_precedence(None, catalogue),
        tolerance_m=0.5,
        version="v1",
    )


@pytest.fixture(scope="module")
def screener(blueprint):
    catalogue = load_catalogue()
    return Screener(blueprint, load_rules(None, catalogue), catalogue, compatibility=load_compatibility())


def screen(screener, geom, ptype="industrial", day=DAY, **declared) -> dict[str, Any]:
    result = screener.screen(parcels(geom), ptype, declared=parse_declared(declared), check_date=day)
    json.loads(result_json(result))  # canonical JSON, as stored
    return result


def by_id(parcel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["feature_id"]: c for c in parcel["conditions"]}


def finding(condition: dict[str, Any], indicator: str, bound: str) -> dict[str, Any]:
    return next(f for f in condition["findings"] if f["indicator"] == indicator and f["bound"] == bound)


def test_without_declared_values_the_conditions_are_listed(screener):
    result = screen(screener, P1)
    parcel = result["parcels"][0]
    found = by_id(parcel)
    assert set(found) == {"A", "B"}
    assert found["A"]["overlap_m2"] == pytest.approx(3000.0) and found["B"]["overlap_m2"] == pytest.approx(
        3000.0
    )
    assert all(c["outcome"] == "listed" and c["findings"] == [] for c in found.values())
    assert found["A"]["land_use"] == {
        "code": "0701",
        "name_zh": "城镇住宅用地",
        "name_en": "Urban residential land",
    }
    assert found["A"]["limits"] == {
        "far_max": 2.5,
        "far_min": 1.0,
        "building_density_max": 30.0,
        "green_ratio_min": 35.0,
        "height_max_m": 60.0,
    }
    assert found["B"]["limits"]["far_min"] is None  # absent: no limit, not 0
    assert parcel["verdict"] == "pass" and result["verdict"] == "pass"  # inside the boundary, listed only
    assert "declared" not in result and result["check_date"] == "2026-06-01"


def test_two_plan_parcels_with_different_limits_each_judged_on_its_own(screener):
    result = screen(screener, P1, far=2.0)
    found = by_id(result["parcels"][0])
    a, b = finding(found["A"], "far", "max"), finding(found["B"], "far", "max")
    assert (a["ok"], a["limit"], a["margin"]) == (True, 2.5, pytest.approx(0.5))
    assert (b["ok"], b["limit"], b["margin"]) == (False, 1.5, pytest.approx(-0.5))
    assert finding(found["A"], "far", "min")["margin"] == pytest.approx(1.0)  # 2.0 − 1.0
    assert found["A"]["outcome"] == "pass" and found["B"]["outcome"] == "conflict"
    assert result["parcels"][0]["verdict"] == "conflict" and result["verdict"] == "conflict"
    assert result["declared"] == {"far": 2.0}
    assert "超过控规上限 1.5" in result["parcels"][0]["explanation_zh"]


@pytest.mark.parametrize(
    ("declared", "indicator", "bound", "limit", "margin", "ok"),
    [
        ({"far": 2.8}, "far", "max", 2.5, -0.3, False),
        ({"far": 0.8}, "far", "min", 1.0, -0.2, False),
        ({"far": 2.5}, "far", "max", 2.5, 0.0, True),  # equal to the limit is within it
        ({"building_density": 35}, "building_density", "max", 30.0, -5.0, False),
        ({"building_density": 28}, "building_density", "max", 30.0, 2.0, True),
        ({"green_ratio": 30}, "green_ratio", "min", 35.0, -5.0, False),
        ({"green_ratio": 40}, "green_ratio", "min", 35.0, 5.0, True),
        ({"height_m": 72}, "height_m", "max", 60.0, -12.0, False),
        ({"height_m": 60}, "height_m", "max", 60.0, 0.0, True),
    ],
)
def test_each_indicator_against_its_limit(screener, declared, indicator, bound, limit, margin, ok):
    result = screen(screener, P2, ptype="residential", **declared)
    (condition,) = result["parcels"][0]["conditions"]
    assert condition["feature_id"] == "A" and condition["overlap_m2"] == pytest.approx(3600.0)
    item = finding(condition, indicator, bound)
    assert (item["limit"], item["ok"]) == (limit, ok)
    assert item["margin"] == pytest.approx(margin)
    assert condition["outcome"] == ("pass" if ok else "conflict")
    assert result["verdict"] == ("pass" if ok else "conflict")
    assert item["explanation_zh"] and item["explanation_en"]


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("0701", True),  # the same code
        ("070102", True),  # inside the plan's second-level class
        ("0702", True),  # listed: community services within urban residential land
        ("1401", True),  # listed: a park anywhere
        ("1001", False),  # industry on residential land
        ("07", False),  # coarser than the plan: could be any residential use
    ],
)
def test_land_use_compatibility(screener, code, ok):
    result = screen(screener, P2, ptype="residential", land_use=code)
    (condition,) = result["parcels"][0]["conditions"]
    (item,) = condition["findings"]
    assert (item["indicator"], item["bound"], item["declared"], item["limit"], item["ok"]) == (
        "land_use",
        "compatible",
        code,
        "0701",
        ok,
    )
    assert item["margin"] is None
    assert result["verdict"] == ("pass" if ok else "conflict")


def test_a_declared_value_without_a_limit_gives_no_finding(screener):
    result = screen(screener, rect(220, 20, 280, 80), far=1.2)
    (condition,) = result["parcels"][0]["conditions"]
    assert condition["feature_id"] == "B"
    assert [(f["indicator"], f["bound"]) for f in condition["findings"]] == [("far", "max")]  # B has no min


def test_assessments_exempt_partial_expired_due(screener):
    parcel = screen(screener, P1)["parcels"][0]
    status = {a["type"]: a for a in parcel["assessments"]}
    assert list(status) == list(load_catalogue().assessment_types)  # all eight, catalogue order
    geo = status["geohazard"]
    assert (geo["status"], geo["covered_m2"], geo["uncovered_m2"]) == ("exempt", pytest.approx(6000.0), 0.0)
    assert geo["documents"] == [
        {
            "layer": "regional_assessment",
            "feature_id": "A",
            "number": "铜政〔2024〕1号",
            "approved": "2024-01-01",
            "valid_until": "2029-12-31",
            "valid": True,
        }
    ]
    soil = status["soil_water"]  # valid, covers x 150–200 of 150–250
    assert (soil["status"], soil["covered_m2"], soil["uncovered_m2"]) == (
        "partial",
        pytest.approx(3000.0),
        pytest.approx(3000.0),
    )
    mineral = status["mineral_overlay"]
    assert (mineral["status"], mineral["covered_m2"], mineral["uncovered_m2"]) == (
        "expired",
        0.0,
        pytest.approx(6000.0),
    )
    assert mineral["documents"][0]["valid"] is False
    due = status["cultural_relics"]
    assert (due["status"], due["covered_m2"], due["documents"]) == ("due", 0.0, [])
    assert "免于单独评估" in geo["explanation_zh"] and "3000.00 平方米未覆盖" in soil["explanation_zh"]


def test_assessment_validity_follows_the_check_date(screener):
    before = {
        a["type"]: a for a in screen(screener, P1, day=dt.date(2022, 1, 1))["parcels"][0]["assessments"]
    }
    assert before["mineral_overlay"]["status"] == "partial"  # still valid then: covers 3,000 of 6,000 m²
    assert before["geohazard"]["status"] == "due"  # not yet approved
    later = {a["type"]: a for a in screen(screener, P1, day=dt.date(2030, 1, 1))["parcels"][0]["assessments"]}
    assert later["geohazard"]["status"] == "expired"
    assert later["soil_water"]["status"] == "partial"  # no expiry date


def test_check_id_depends_on_declared_values_and_day(screener):
    ids = {
        screen(screener, P2)["check_id"],
        screen(screener, P2, far=1.2)["check_id"],
        screen(screener, P2, day=dt.date(2026, 6, 2))["check_id"],
    }
    assert len(ids) == 3
    assert screen(screener, P2, far=1.2)["check_id"] == screen(screener, P2, far="1.2")["check_id"]


def test_construction_plan_parcels_outside_the_boundary_or_on_the_red_line_are_conflicts(blueprint):
    rows = blueprint.conflicts[blueprint.conflicts["kind_b"] == "detailed_plan"]
    got = sorted((r.rule, r.kind_a, round(r.area_m2, 3), r.feature_ids) for r in rows.itertuples())
    assert got == [
        # C's half on the red line: [0, 50] × [100, 200]
        (
            "plan_use_on_line",
            "ecological_redline",
            5000.0,
            json.dumps({"ecological_redline": ["A"], "detailed_plan": ["C"]}),
        ),
        # D (1 m², outside the city too) and C lie outside the boundary; E (0703 rural homestead) may
        (
            "plan_use_outside_line",
            "urban_boundary",
            1.0,
            json.dumps({"urban_boundary": [], "detailed_plan": ["D"]}),
        ),
        (
            "plan_use_outside_line",
            "urban_boundary",
            10000.0,
            json.dumps({"urban_boundary": [], "detailed_plan": ["C"]}),
        ),
    ]
    assert set(rows["winner"]) == {"ecological_redline", "urban_boundary"}
    assert list(blueprint.conflicts["conflict_id"]) == [
        f"C{i:06d}" for i in range(1, len(blueprint.conflicts) + 1)
    ]


@pytest.mark.parametrize(
    ("declared", "field"),
    [
        ({"far": "abc"}, "declared.far"),
        ({"height_m": True}, "declared.height_m"),
        ({"green_ratio": 120}, "declared.green_ratio"),
        ({"building_density": -1}, "declared.building_density"),
        ({"land_use": "9999"}, "declared.land_use"),
        ({"plot": 1}, "declared.plot"),
    ],
)
def test_bad_declared_values_name_the_field(declared, field):
    with pytest.raises(InvalidDeclaredError) as err:
        parse_declared(declared)
    assert str(err.value).startswith(field)


def test_declared_numbers_from_text():
    assert parse_declared({"far": "2.8", "land_use": 1001, "height_m": 24}) == Declared(
        land_use="1001", far=2.8, height_m=24.0
    )


def test_overlaps_are_plane_areas_in_the_parcels_own_zone():
    """The real zone-40 部标 parcel (Hangzhou, 120.2°E) under a plan parcel and an assessment that cover
    it: both report the parcel's own-zone area (57,089 m², the file's 5.7089 公顷), not the working zone's."""
    from pathlib import Path

    from shapely.geometry import box

    from blueprint.features import condition_features
    from layers.ingest import read_parcels
    from tests.checks.conftest import make_blueprint

    catalogue = load_catalogue()
    path = Path(__file__).resolve().parents[1] / "data" / "bubiao" / "pengbu_zone40.txt"
    parcel_set = read_parcels(path, work_crs=gpd.GeoSeries([], crs=4548).crs)
    b = parcel_set.frame.total_bounds
    cover = box(b[0] - 500, b[1] - 500, b[2] + 500, b[3] + 500)
    blueprint = make_blueprint([("P1", ["urban_space"], cover)])
    blueprint.features = condition_features([
        _layer("detailed_plan", [cover], {"YDDM": ["0901"], "RJL": [3.0]}),
        _layer("regional_assessment", [cover], {"PGLX": ["seismic_safety"], "PZRQ": ["2025-01-01"]})],
        blueprint.crs)
    screener = Screener(blueprint, load_rules(None, catalogue), catalogue)
    parcel = screener.screen(parcel_set, "industrial", check_date=DAY)["parcels"][0]
    assert parcel["plane_zone"]["zone"] == 40
    assert parcel["area_m2"] == pytest.approx(57_089.0, abs=1.0)
    (condition,) = parcel["conditions"]
    assert condition["overlap_m2"] == pytest.approx(parcel["area_m2"], abs=1e-3)
    seismic = next(a for a in parcel["assessments"] if a["type"] == "seismic_safety")
    assert seismic["status"] == "exempt"
    assert seismic["covered_m2"] == pytest.approx(parcel["area_m2"], abs=1e-3)


@pytest.mark.parametrize(("top", "status", "uncovered"), [
    (100.005, "exempt", 0.5),  # 100 m × 5 mm uncovered: below 1 m² and 0.1 %: fully covered within tolerance
    (100.5, "partial", 50.0),  # 100 m × 0.5 m uncovered: above 1 m²
])
def test_exempt_means_covered_within_the_overlap_tolerance(screener, top, status, uncovered):
    parcel = screen(screener, rect(150, 20, 250, top))["parcels"][0]
    geo = next(a for a in parcel["assessments"] if a["type"] == "geohazard")
    assert geo["status"] == status
    assert geo["uncovered_m2"] == pytest.approx(uncovered, abs=1e-6)
    assert geo["covered_m2"] == pytest.approx(8000.0, abs=1e-6)  # 100 m × 80 m below y = 100
