"""What the workbench relies on, as any client sees it: who am I, project types, national codes, new
parcels for a pooled project (earlier set kept), Chinese messages, and the Word/Excel reports."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from tests.api.conftest import PASS_PARCEL, REDLINE_PARCEL, Api, collection, national_code
from tests.api.test_projects import create
from tests.api.test_service import assert_error

docx = pytest.importorskip("docx")
openpyxl = pytest.importorskip("openpyxl")


def test_me_says_role_and_permitted_actions(city: Api) -> None:
    me = city.get("planner", "/api/v1/me").json()
    assert me["role"] == "planner" and me["role_zh"] == "规划编审人员"
    assert "project" in me["may"] and "decide" not in me["may"]
    assert "decide" in city.get("reviewer", "/api/v1/me").json()["may"]


def test_project_types_come_from_the_rules_with_chinese_names(city: Api) -> None:
    types = city.get("reviewer", "/api/v1/project-types").json()
    industrial = {"key": "industrial", "name_zh": "工业项目", "name_en": "Industrial project",
                  "urban_construction": True}
    assert any(industrial.items() <= t.items() for t in types)


@pytest.mark.parametrize("code", ["TL-2026-001", "2026-340700-47-01-00001", "2026-34070A-47-01-000001"])
def test_a_new_project_needs_a_national_code(city: Api, code: str) -> None:
    r = create(city, PASS_PARCEL, code=code)
    assert_error(r, 422, "invalid_request")
    assert "全国投资项目代码" in r.json()["detail"] and r.json()["message_zh"]


def test_errors_carry_a_chinese_message_with_what_to_do(city: Api) -> None:
    r = city.post("planner", "/api/v1/checks", json={"project_type": "industrial",
                                                      "parcels": collection(PASS_PARCEL)})
    assert r.status_code == 201
    far = collection(PASS_PARCEL.__class__([(1e6, 1e6), (1e6 + 10, 1e6), (1e6 + 10, 1e6 + 10)]))
    body = city.post("planner", "/api/v1/checks", json={"project_type": "industrial", "parcels": far}).json()
    assert body["code"] in ("parcel_outside_city", "coordinates_out_of_range") and body["message_zh"]


def test_new_parcels_keep_the_earlier_set_and_need_a_new_check(city: Api) -> None:
    code = create(city, PASS_PARCEL).json()["code"]
    first = city.post("planner", f"/api/v1/projects/{code}/checks").json()
    assert first["verdict"] == "pass"
    r = city.put("planner", f"/api/v1/projects/{code}/parcels", json=collection(REDLINE_PARCEL))
    assert r.status_code == 200, r.text
    project = r.json()
    assert project["status"] == "submitted" and project["latest_check_id"] is None
    assert project["parcels_revision"] == 2
    second = city.post("planner", f"/api/v1/projects/{code}/checks").json()
    assert second["verdict"] == "conflict"
    detail = city.get("reviewer", f"/api/v1/projects/{code}").json()
    assert [c["parcels_revision"] for c in detail["checks"]] == [1, 2]
    assert [r["revision"] for r in detail["parcel_revisions"]] == [1]
    audit = city.get("admin", "/api/v1/audit", params={"subject_id": code}).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert any(e["action"] == "project.parcels" for e in entries)


def test_parcels_cannot_change_in_joint_review_and_a_reviewer_cannot_change_them(city: Api) -> None:
    code = create(city, PASS_PARCEL).json()["code"]
    assert_error(city.put("reviewer", f"/api/v1/projects/{code}/parcels", json=collection(PASS_PARCEL)),
                 403, "forbidden")
    city.post("planner", f"/api/v1/projects/{code}/checks")
    r = city.post("planner", f"/api/v1/projects/{code}/status", json={"status": "in_review"})
    assert r.status_code == 200
    r = city.put("planner", f"/api/v1/projects/{code}/parcels", json=collection(REDLINE_PARCEL))
    assert_error(r, 409, "invalid_transition")
    assert city.get("reviewer", f"/api/v1/projects/{code}").json()["parcels_revision"] == 1


def test_word_and_excel_reports_hold_the_stored_numbers(city: Api) -> None:
    code = create(city, REDLINE_PARCEL, code=national_code()).json()["code"]
    check = city.post("planner", f"/api/v1/projects/{code}/checks").json()
    hit = check["parcels"][0]["conflicts"][0]
    r = city.get("approval_system", f"/api/v1/checks/{check['check_id']}/report.docx")
    assert r.status_code == 200 and r.headers["content-type"].endswith("wordprocessingml.document")
    document = docx.Document(io.BytesIO(r.content))
    cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
    assert repr(hit["overlap_area_m2"]) in cells and code in cells
    assert not any("industrial" == c for c in cells)
    r = city.get("reviewer", f"/api/v1/checks/{check['check_id']}/report.xlsx")
    assert r.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).worksheets[0]
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert [row[7] for row in rows if row[5] == hit["name_zh"]] == [hit["overlap_area_m2"]]
    assert city.get("reviewer", "/api/v1/checks/chk_nope/report.docx").status_code == 404


def test_project_types_name_their_group_and_either_level_screens(city: Api) -> None:
    types = {t["key"]: t for t in city.get("reviewer", "/api/v1/project-types").json()}
    assert types["industrial"]["is_group"] and types["industrial"]["group"] == "industrial"
    tourism = types["tourism_facility"]
    assert not tourism["is_group"] and tourism["group"] == "public_facility"
    assert tourism["group_name_zh"] == "公共服务设施项目"
    body = {"project_type": "tourism_facility", "parcels": collection(REDLINE_PARCEL)}
    r = city.post("approval_system", "/api/v1/checks", json=body)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["verdict"] == "review" and result["project_type_group"] == "public_facility"
    assert result["rules"]["version"] and result["requirements"]
    hit = result["parcels"][0]["conflicts"][0]
    assert hit["rule"] == "conditional" and hit["regulation"]["number"] == "自然资发〔2022〕142号"
    r = city.post("approval_system", "/api/v1/checks", json={**body, "project_type": "hotel"})
    assert_error(r, 422, "unknown_project_type")
    assert "tourism_facility" in r.json()["detail"]


def test_rules_endpoint_lists_the_policy_with_citations(city: Api) -> None:
    doc = city.get("planner", "/api/v1/rules").json()
    assert doc["rules"]["version"] and doc["rules"]["effective_date"]
    row = next(r for r in doc["policy"]
               if r["kind"] == "permanent_farmland" and r["project_type"] == "military_facility")
    assert row["outcome"] == "conditional" and row["regulation"]["article"].startswith("第三十五条")
    assert {"state_council_approval", "farmland_replacement_plan"} <= {n["key"] for n in row["requirements"]}


def test_reports_print_when_the_check_ran_not_only_when_downloaded(
    city: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import checks.store

    ran = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    monkeypatch.setattr(checks.store, "utcnow", lambda: ran)
    code = create(city, REDLINE_PARCEL, code=national_code()).json()["code"]
    check = city.post("planner", f"/api/v1/projects/{code}/checks").json()
    monkeypatch.undo()
    base = f"/api/v1/checks/{check['check_id']}/report"
    document = docx.Document(io.BytesIO(city.get("reviewer", f"{base}.docx").content))
    rows = {r.cells[0].text: r.cells[1].text for t in document.tables for r in t.rows if len(r.cells) > 1}
    assert rows["检测时间 Screened"] == "2026-03-04 05:06 UTC"
    assert rows["生成时间 Generated"] != rows["检测时间 Screened"]
    sheet = openpyxl.load_workbook(io.BytesIO(city.get("reviewer", f"{base}.xlsx").content))
    info = {r[0]: r[1] for r in sheet["检查信息"].iter_rows(values_only=True) if r and r[0]}
    assert info["检测时间 Screened"] == "2026-03-04 05:06 UTC"
    html = city.get("reviewer", f"{base}.html").text
    assert 'id="checked-at">2026-03-04 05:06 UTC<' in html
