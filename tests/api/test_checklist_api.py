"""GET /api/v1/projects/{code}/checklist[.docx|.pdf] on a city with a detailed plan and assessments."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from layers.crs import OUTPUT_CRS
from tests.api.conftest import (
    LAYERS,
    PASS_PARCEL,
    Api,
    make_keys,
    national_code,
    rect,
    settings_for,
    upload_layer,
    write_layer,
)
from tests.api.test_service import assert_error

docx = pytest.importorskip("docx")

# the project parcel PASS_PARCEL is [1500,1600] × [400,500] = 10,000 m², inside the urban boundary
PLAN = {"YDDM": ["1001"], "RJL": [2.0], "JZMD": [40.0], "LDL": [15.0], "JZXG": [30.0]}
# (type, number, approved, valid until, area): geohazard covers it, flood half, seismic expired
ASSESSMENTS = [
    ("geohazard", "铜自然资〔2025〕3号", "2025-01-10", "2099-12-31", (1000, 0, 2000, 1000)),
    ("flood_impact", "铜水〔2025〕8号", "2025-02-01", "2099-12-31", (1000, 0, 1550, 1000)),
    ("seismic_safety", "铜震〔2015〕1号", "2015-05-01", "2020-05-01", (1000, 0, 2000, 1000)),
]


def _upload(api: Api, path: Path, kind: str) -> None:
    r = upload_layer(api, path, kind)
    assert r.status_code == 201, r.text


def _publish(api: Api, tmp: Path) -> str:
    for kind in LAYERS:
        _upload(api, write_layer(tmp, kind), kind)
    plan = tmp / "detailed_plan.geojson"
    gpd.GeoDataFrame(
        {"编号": ["KG-01"], **PLAN}, geometry=[rect(1400, 300, 1700, 600)], crs="EPSG:4548"
    ).to_crs(OUTPUT_CRS).to_file(plan, driver="GeoJSON")
    _upload(api, plan, "detailed_plan")
    pg = tmp / "regional_assessment.geojson"
    gpd.GeoDataFrame(
        {
            "编号": [f"PG-{i}" for i in range(1, 4)],
            "PGLX": [a[0] for a in ASSESSMENTS],
            "WH": [a[1] for a in ASSESSMENTS],
            "PZRQ": [a[2] for a in ASSESSMENTS],
            "YXQZ": [a[3] for a in ASSESSMENTS],
        },
        geometry=[rect(*a[4]) for a in ASSESSMENTS],
        crs="EPSG:4548",
    ).to_crs(OUTPUT_CRS).to_file(pg, driver="GeoJSON")
    _upload(api, pg, "regional_assessment")
    version = api.post("admin", "/api/v1/blueprints", json={}).json()["version"]
    assert api.post("admin", f"/api/v1/blueprints/{version}/publish").status_code == 200
    return version


@pytest.fixture(scope="module")
def planned(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("planned")
    app = create_app(settings_for(module_db_url, tmp))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        api.version = _publish(api, tmp)  # type: ignore[attr-defined]
        yield api
    app.state.services.close()


def _project(api: Api) -> str:
    from tests.api.conftest import collection

    body = {
        "code": national_code(),
        "name": "铜陵新材料厂房",
        "project_type": "industrial",
        "applicant": "某公司",
        "district": "铜官区",
        "parcels": collection(PASS_PARCEL),
    }
    r = api.post("planner", "/api/v1/projects", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _assessment(parcel: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(a for a in parcel["assessments"] if a["type"] == kind)


def test_unscreened_project_is_screened_now_and_nothing_stored(planned: Api) -> None:
    code = _project(planned)
    r = planned.get("reviewer", f"/api/v1/projects/{code}/checklist")
    assert r.status_code == 200, r.text
    sheet = r.json()
    assert sheet["stored"] is False and sheet["check_id"] is None
    assert sheet["blueprint"]["version"] == planned.version and len(sheet["blueprint"]["checksum"]) == 64
    assert sheet["project"]["code"] == code and sheet["project"]["name"] == "铜陵新材料厂房"
    parcel = sheet["parcels"][0]
    assert [c["kind"] for c in parcel["controls"]] == ["urban_boundary"]
    (condition,) = parcel["conditions"]
    assert condition["outcome"] == "listed" and condition["land_use"]["code"] == "1001"
    assert condition["limits"]["far_max"] == 2.0 and condition["limits"]["far_min"] is None
    assert condition["source"]["feature_id"] and condition["source"]["blueprint_version"] == planned.version
    assert round(condition["overlap_m2"]) == 10_000
    geo, flood, seismic = (_assessment(parcel, k) for k in ("geohazard", "flood_impact", "seismic_safety"))
    assert geo["status"] == "exempt" and geo["documents"][0]["number"] == "铜自然资〔2025〕3号"
    # flood impact covers x ≤ 1550: half of the 100 m wide parcel
    assert flood["status"] == "partial" and round(flood["uncovered_m2"]) == 5000
    assert seismic["status"] == "expired"
    assert len(parcel["assessments"]) == 8 and parcel["assessments_reusable"] == ["geohazard"]
    assert planned.get("reviewer", f"/api/v1/projects/{code}").json()["checks"] == []


def test_screened_project_uses_its_stored_check(planned: Api) -> None:
    code = _project(planned)
    declared = {"land_use": "1001", "far": 2.8, "height_m": 24}
    check = planned.post("planner", f"/api/v1/projects/{code}/checks", json={"declared": declared}).json()
    sheet = planned.get(
        "planner", f"/api/v1/projects/{code}/checklist", params={"version": planned.version}
    ).json()
    assert sheet["stored"] is True and sheet["check_id"] == check["check_id"]
    # the time the stored check ran, not the time the checklist was asked for
    stored_at = planned.services.stores.checks.meta(check["check_id"])["created_at"]
    assert sheet["checked_at"] == stored_at is not None
    assert sheet["verdict"] == check["verdict"] == "conflict"
    assert sheet["declared"] == {"land_use": "1001", "far": 2.8, "height_m": 24.0}
    (condition,) = sheet["parcels"][0]["conditions"]
    # FAR 2.8 against a maximum of 2.0: breached by 0.8; 24 m under the 30 m limit
    assert condition["outcome"] == "conflict" and condition["breaches"] == ["far"]
    far = next(f for f in condition["findings"] if f["indicator"] == "far")
    assert far["margin"] == pytest.approx(-0.8) and far["ok"] is False
    assert sheet["summary"]["conditions_breached"] == 1


def test_stored_check_and_its_time_are_read_in_one_query(planned: Api) -> None:
    """The checklist of a screened project reads its check's result and when it ran in one SELECT."""
    import re

    import sqlalchemy as sa

    code = _project(planned)
    planned.post("planner", f"/api/v1/projects/{code}/checks", json={"declared": {"land_use": "1001"}})
    reads: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if re.search(r"\bFROM checks\b", statement):
            reads.append(statement)

    engine = planned.services.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        sheet = planned.get("planner", f"/api/v1/projects/{code}/checklist").json()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert sheet["stored"] is True and sheet["checked_at"]
    assert len(reads) == 1, reads


def test_word_and_pdf(planned: Api) -> None:
    code = _project(planned)
    r = planned.get("reviewer", f"/api/v1/projects/{code}/checklist.docx")
    assert r.status_code == 200 and "checklist-" in r.headers["content-disposition"]
    doc = docx.Document(io.BytesIO(r.content))
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    assert code in cells and "可复用（免于单独评估）" in cells and "已过期（须重新评估）" in cells
    assert any("铜自然资〔2025〕3号" in c for c in cells) and "工业用地（1001）" in cells
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        pdf = planned.get("reviewer", f"/api/v1/projects/{code}/checklist.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_unknown_project_and_version(planned: Api) -> None:
    assert_error(
        planned.get("reviewer", "/api/v1/projects/2026-340705-39-03-999999/checklist"),
        404,
        "project_not_found",
    )
    code = _project(planned)
    r = planned.get("reviewer", f"/api/v1/projects/{code}/checklist", params={"version": "v99"})
    assert r.status_code == 404 and r.json()["code"] == "blueprint_not_found"


def test_review_reports_carry_conditions_and_assessments(planned: Api) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    code = _project(planned)
    check = planned.post("planner", f"/api/v1/projects/{code}/checks", json={"declared": {"far": 2.8}}).json()
    base = f"/api/v1/checks/{check['check_id']}/report"
    html = planned.get("reviewer", f"{base}.html").text
    assert "规划条件" in html and "区域评估" in html and 'class="ok-false">超出' in html
    assert "可复用（免于单独评估）" in html and "部分覆盖（须补充评估）" in html
    doc = docx.Document(io.BytesIO(planned.get("reviewer", f"{base}.docx").content))
    text = "\n".join(p.text for p in doc.paragraphs)
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    assert (
        "四、规划条件 Planning conditions (detailed plan)" in text
        and "五、区域评估 Regional assessments" in text
    )
    assert "容积率" in cells and "不大于 2" in cells and "超出" in cells and "已过期（须重新评估）" in cells
    book = openpyxl.load_workbook(io.BytesIO(planned.get("reviewer", f"{base}.xlsx").content))
    rows = list(book["规划条件"].iter_rows(min_row=2, values_only=True))
    assert rows[0][5] == "容积率" and rows[0][9] == "超出" and rows[0][3] == pytest.approx(10_000, abs=1)
    statuses = {r[1]: r[2] for r in book["区域评估"].iter_rows(min_row=2, values_only=True)}
    assert statuses["地质灾害危险性评估"] == "可复用（免于单独评估）" and len(statuses) == 8
