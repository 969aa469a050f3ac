"""Planning conditions and regional assessments through the HTTP API (SpatiaLite and PostGIS).

The test city of tests/api/conftest.py (red line x 0–500, farmland 500–1100, urban boundary 1000–2000,
y 0–1000) gets a detailed plan and regional assessments uploaded by an admin, with the department's own
field names given in the upload's ``fields``:

    plan KG-1 0701 [1200, 1400] × [0, 200]  FAR ≤ 2.5, density ≤ 30 %, green ≥ 35 %, height ≤ 60 m
    plan KG-2 1001 [1400, 1600] × [0, 200]  FAR ≤ 1.5 (no other limits)
    plan KG-3 0901 [200, 300]   × [0, 100]  commercial on the red line (a 差异图斑)
    assessment A-1 geohazard (2024-01-01 … 2029-12-31) [1200, 1600] × [0, 200]

Parcel [1300, 1500] × [50, 150] (20,000 m²) overlaps KG-1 and KG-2 by 10,000 m² each.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from layers.crs import OUTPUT_CRS
from tests.api.conftest import (
    LAYERS,
    Api,
    collection,
    make_keys,
    national_code,
    rect,
    settings_for,
    upload_layer,
    write_layer,
)

PARCEL = rect(1300, 50, 1500, 150)


def _upload(api: Api, path: Path, kind: str, **data: str):
    return upload_layer(api, path, kind, name=path.stem, **data)


def _plan_file(tmp: Path) -> Path:
    path = tmp / "kg.geojson"
    gpd.GeoDataFrame(
        {
            "DKBH": ["KG-1", "KG-2", "KG-3"],
            "用地代码": ["0701", "1001", "0901"],
            "容积率": [2.5, 1.5, 3.0],
            "JZMD": [30.0, None, None],
            "LDL": [35.0, None, None],
            "JZXG": [60.0, None, None],
        },
        geometry=[rect(1200, 0, 1400, 200), rect(1400, 0, 1600, 200), rect(200, 0, 300, 100)],
        crs="EPSG:4548",
    ).to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
    return path


def _assessment_file(tmp: Path) -> Path:
    path = tmp / "pg.geojson"
    gpd.GeoDataFrame(
        {
            "BH": ["A-1"],
            "PGLX": ["地质灾害危险性评估"],
            "WH": ["铜自然资〔2024〕8号"],
            "PZRQ": ["2024-01-01"],
            "YXQZ": ["2029-12-31"],
        },
        geometry=[rect(1200, 0, 1600, 200)],
        crs="EPSG:4548",
    ).to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
    return path


@pytest.fixture(scope="module")
def planned(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The test city with a detailed plan and assessments, published as v1; judged on 2026-06-01."""
    tmp_path = tmp_path_factory.mktemp("planned")
    app = create_app(settings_for(module_db_url, tmp_path))
    app.state.services.today = lambda: dt.date(2026, 6, 1)
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        for kind in LAYERS:
            r = _upload(api, write_layer(tmp_path, kind), kind)
            assert r.status_code == 201, r.text
        r = _upload(api, _plan_file(tmp_path), "detailed_plan", fields="YDDM=用地代码, RJL=容积率")
        assert r.status_code == 201, r.text
        assert r.json()["feature_count"] == 3
        r = _upload(api, _assessment_file(tmp_path), "regional_assessment")
        assert r.status_code == 201, r.text
        r = api.post("admin", "/api/v1/blueprints", json={})
        assert r.status_code == 201, r.text
        assert api.post("admin", "/api/v1/blueprints/v1/publish").status_code == 200
        yield api
    app.state.services.close()


def _check(api: Api, **body) -> dict:
    r = api.post(
        "approval_system",
        "/api/v1/checks",
        json={"project_type": "industrial", "parcels": collection(PARCEL), **body},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_declared_values_are_held_against_each_plan_parcel(planned: Api):
    result = _check(planned, declared={"land_use": "1001", "far": 2.0})
    (parcel,) = result["parcels"]
    found = {c["feature_id"]: c for c in parcel["conditions"]}
    assert set(found) == {"KG-1", "KG-2"}
    assert found["KG-1"]["overlap_m2"] == pytest.approx(10_000, abs=1e-3)
    assert found["KG-2"]["overlap_m2"] == pytest.approx(10_000, abs=1e-3)
    one = {(f["indicator"], f["bound"]): f for f in found["KG-1"]["findings"]}
    two = {(f["indicator"], f["bound"]): f for f in found["KG-2"]["findings"]}
    assert one[("land_use", "compatible")]["ok"] is False  # industry on residential land
    assert one[("far", "max")]["ok"] is True and one[("far", "max")]["margin"] == pytest.approx(0.5)
    assert two[("land_use", "compatible")]["ok"] is True
    assert two[("far", "max")]["ok"] is False and two[("far", "max")]["margin"] == pytest.approx(-0.5)
    assert found["KG-1"]["outcome"] == found["KG-2"]["outcome"] == "conflict"
    assert parcel["verdict"] == "conflict" and result["verdict"] == "conflict"
    stored = planned.get("reviewer", f"/api/v1/checks/{result['check_id']}").json()
    assert stored["parcels"][0]["conditions"] == parcel["conditions"]


def test_without_declared_values_conditions_are_listed_and_assessments_given(planned: Api):
    result = _check(planned)
    (parcel,) = result["parcels"]
    assert [c["outcome"] for c in parcel["conditions"]] == ["listed", "listed"]
    assert parcel["verdict"] == "pass"
    status = {a["type"]: a["status"] for a in parcel["assessments"]}
    assert status["geohazard"] == "exempt" and len(status) == 8
    assert set(status.values()) == {"exempt", "due"}
    assert result["check_date"] == "2026-06-01"


@pytest.mark.parametrize(
    ("declared", "field"),
    [
        ({"far": "abc"}, "declared.far"),
        ({"height_m": "高"}, "declared.height_m"),
        ({"land_use": "0000"}, "declared.land_use"),
    ],
)
def test_a_declared_value_that_is_not_a_number_is_a_422_naming_the_field(planned: Api, declared, field):
    r = planned.post(
        "approval_system",
        "/api/v1/checks",
        json={"project_type": "industrial", "parcels": collection(PARCEL), "declared": declared},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_declared" and field in body["detail"] and body["message_zh"]


def test_multipart_check_takes_declared_json(planned: Api, tmp_path: Path):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps(collection(PARCEL)), encoding="utf-8")
    with path.open("rb") as fh:
        r = planned.post(
            "approval_system",
            "/api/v1/checks",
            files={"file": (path.name, fh)},
            data={"project_type": "industrial", "declared": '{"far": 1.2}'},
        )
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "pass" and r.json()["declared"] == {"far": 1.2}
    with path.open("rb") as fh:
        r = planned.post(
            "approval_system",
            "/api/v1/checks",
            files={"file": (path.name, fh)},
            data={"project_type": "industrial", "declared": '{"far": "x"}'},
        )
    assert r.status_code == 422 and "declared.far" in r.json()["detail"]


def test_project_check_with_declared_values(planned: Api):
    code = national_code()
    r = planned.post(
        "planner",
        "/api/v1/projects",
        json={
            "code": code,
            "name": "铜陵测试厂房",
            "project_type": "industrial",
            "applicant": "测试公司",
            "district": "铜官区",
            "parcels": collection(PARCEL),
        },
    )
    assert r.status_code == 201, r.text
    r = planned.post("planner", f"/api/v1/projects/{code}/checks", json={"declared": {"far": 1.4}})
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "pass"
    r = planned.post("planner", f"/api/v1/projects/{code}/checks", json={"declared": {"far": 1.6}})
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "conflict"  # KG-2 allows 1.5


def test_plan_parcel_on_the_red_line_is_listed_as_conflicts(planned: Api):
    blueprint = planned.services.stores.blueprints.get("v1")
    rows = blueprint.conflicts[blueprint.conflicts["kind_b"] == "detailed_plan"].sort_values("rule")
    # KG-3 (commercial, 100 × 100 m) lies on the red line and, being there, outside the urban boundary
    assert list(rows["rule"]) == ["plan_use_on_line", "plan_use_outside_line"]
    assert list(rows["kind_a"]) == ["ecological_redline", "urban_boundary"]
    assert list(rows["area_m2"]) == pytest.approx([10_000, 10_000], abs=1e-3)
    assert [json.loads(t)["detailed_plan"] for t in rows["feature_ids"]] == [["KG-3"], ["KG-3"]]
    # the features come back from the layer store with their attributes
    features = blueprint.features.set_index("feature_id")
    assert features.loc["KG-1", "far_max"] == 2.5 and features.loc["A-1", "assessment_type"] == "geohazard"


def test_bad_field_mapping_and_unknown_code_are_422(fresh: Api, tmp_path: Path):
    path = _plan_file(tmp_path)
    r = _upload(fresh, path, "detailed_plan")  # YDDM is called 用地代码 in this file
    assert r.status_code == 422 and r.json()["code"] == "invalid_field_mapping"
    assert "YDDM" in r.json()["detail"]
    bad = tmp_path / "bad.geojson"
    gpd.GeoDataFrame(
        {"DKBH": ["X-1"], "YDDM": ["0799"]}, geometry=[rect(1200, 0, 1300, 100)], crs="EPSG:4548"
    ).to_crs(OUTPUT_CRS).to_file(bad, driver="GeoJSON")
    r = _upload(fresh, bad, "detailed_plan")
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "unknown_land_use_code" and "X-1" in r.json()["detail"]
    assert "0799" in r.json()["detail"]


def test_rescreening_after_a_publish_keeps_the_declared_values(planned: Api):
    """Runs last in this module: it publishes v2 (the same layers) and re-screens a project against it."""
    from runtime.rescreen import rescreen_project

    code = national_code()
    r = planned.post("planner", "/api/v1/projects", json={
        "code": code, "name": "铜陵测试仓库", "project_type": "industrial", "applicant": "测试公司",
        "district": "铜官区", "parcels": collection(PARCEL)})
    assert r.status_code == 201, r.text
    r = planned.post("planner", f"/api/v1/projects/{code}/checks", json={"declared": {"far": 1.6}})
    assert r.status_code == 201 and r.json()["verdict"] == "conflict"
    assert planned.post("admin", "/api/v1/blueprints", json={}).status_code == 201
    assert planned.post("admin", "/api/v1/blueprints/v2/publish").status_code == 200
    rescreen_project(planned.services, code, "v2", "job-test")  # None when the in-process worker was first
    latest = planned.services.projects.get(code)["latest_check_id"]
    result = json.loads(planned.services.stores.checks.get(latest))
    assert result["blueprint_version"] == "v2"
    assert result["declared"] == {"far": 1.6} and result["verdict"] == "conflict"
