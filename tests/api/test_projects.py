"""The project pool: create, search, screen, lifecycle rules, joint review, locate, audit."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from shapely.geometry import shape

from tests.api.conftest import PASS_PARCEL, REDLINE_PARCEL, Api, collection, national_code, rect, unique
from tests.api.test_service import assert_error


def create(city: Api, *geoms, role: str = "planner", **fields):
    body = {
        "code": national_code(),
        "name": "铜陵测试项目",
        "project_type": "industrial",
        "applicant": "某公司",
        "district": "铜官区",
        **fields,
        "parcels": collection(*geoms),
    }
    return city.post(role, "/api/v1/projects", json=body)


def test_create_and_read(city: Api) -> None:
    r = create(city, PASS_PARCEL, name="铜陵新材料产业园", district="义安区")
    assert r.status_code == 201, r.text
    project = r.json()
    assert project["status"] == "submitted" and project["parcel_count"] == 1
    assert abs(project["area_m2"] - 10_000) < 1
    detail = city.get("approval_system", f"/api/v1/projects/{project['code']}").json()
    assert detail["name"] == "铜陵新材料产业园" and detail["checks"] == [] and detail["reviews"] == []


def test_duplicate_code_conflicts(city: Api) -> None:
    code = national_code()
    assert create(city, PASS_PARCEL, code=code).status_code == 201
    assert_error(create(city, PASS_PARCEL, code=code), 409, "project_exists")


def test_concurrent_creates_of_one_code_make_one_project(city: Api) -> None:
    code = national_code()
    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(
            r.status_code for r in pool.map(lambda _: create(city, PASS_PARCEL, code=code), range(6))
        )
    assert statuses == [201, 409, 409, 409, 409, 409]


def test_create_with_a_file_upload(city: Api) -> None:
    code = national_code()
    data = json.dumps(collection(PASS_PARCEL, rect(1700, 100, 1750, 150))).encode()
    r = city.post(
        "planner",
        "/api/v1/projects",
        files={"file": ("parcels.geojson", data)},
        data={
            "code": code,
            "name": "上传项目",
            "project_type": "industrial",
            "applicant": "A",
            "district": "郊区",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["parcel_count"] == 2


def test_invalid_project_fields(city: Api) -> None:
    assert_error(create(city, PASS_PARCEL, code="bad code/with slash"), 422, "invalid_request")
    assert_error(create(city, PASS_PARCEL, project_type="casino"), 422, "unknown_project_type")
    assert_error(create(city, PASS_PARCEL, role="reviewer"), 403, "forbidden")


def lifecycle(city: Api, geom) -> tuple[str, str]:
    code = create(city, geom).json()["code"]
    r = city.post("planner", f"/api/v1/projects/{code}/checks")
    assert r.status_code == 201, r.text
    return code, r.json()["check_id"]


def status(city: Api, code: str, new: str, role: str = "reviewer", reason: str = ""):
    return city.post(role, f"/api/v1/projects/{code}/status", json={"status": new, "reason": reason})


def test_pass_project_goes_all_the_way(city: Api) -> None:
    code = create(city, PASS_PARCEL).json()["code"]
    assert_error(status(city, code, "in_review"), 409, "invalid_transition")  # not screened yet
    assert_error(status(city, code, "cleared"), 409, "invalid_transition")
    r = city.post("planner", f"/api/v1/projects/{code}/checks")
    assert r.status_code == 201 and r.json()["verdict"] == "pass"
    project = city.get("reviewer", f"/api/v1/projects/{code}").json()
    assert project["status"] == "screened" and project["latest_check_id"] == r.json()["check_id"]
    assert project["checks"][0]["verdict"] == "pass"
    assert status(city, code, "in_review", role="planner").json()["status"] == "in_review"
    assert_error(status(city, code, "cleared", role="planner"), 403, "forbidden")
    assert status(city, code, "cleared").json()["status"] == "cleared"
    assert_error(status(city, code, "rejected"), 409, "invalid_transition")  # final
    assert_error(city.post("planner", f"/api/v1/projects/{code}/checks"), 409, "invalid_transition")


def test_conflict_needs_a_decision_with_reasons_to_clear(city: Api) -> None:
    code, check_id = lifecycle(city, REDLINE_PARCEL)
    assert city.get("planner", f"/api/v1/projects/{code}").json()["latest_verdict"] == "conflict"
    assert status(city, code, "in_review").status_code == 200
    assert_error(status(city, code, "cleared"), 409, "review_required")
    # a decision without reasons is recorded, but does not allow clearing
    r = city.post(
        "reviewer",
        f"/api/v1/projects/{code}/reviews",
        json={"decided_by": "联合审查会议 2026-11-23", "decision": "approved"},
    )
    assert r.status_code == 201, r.text
    assert_error(status(city, code, "cleared"), 409, "review_required")
    # a rejection with reasons does not clear either
    city.post(
        "reviewer",
        f"/api/v1/projects/{code}/reviews",
        json={"decided_by": "会议", "decision": "rejected", "reasons": "占用生态保护红线"},
    )
    assert_error(status(city, code, "cleared"), 409, "review_required")
    r = city.post(
        "reviewer",
        "/api/v1/reviews",
        json={
            "check_id": check_id,
            "decided_by": "联合审查会议：自然资源局、生态环境局",
            "decided_at": "2026-11-23T09:30:00+08:00",
            "decision": "approved_with_conditions",
            "conditions": ["调整红线内地块", "补充生态评估"],
            "reasons": "国家重大项目，无法避让 unavoidable national project",
        },
    )
    assert r.status_code == 201, r.text
    review = r.json()
    assert (
        review["conditions"] == ["调整红线内地块", "补充生态评估"]
        and review["recorded_by"] == "test reviewer"
    )
    assert status(city, code, "cleared", reason="per joint review").json()["status"] == "cleared"
    detail = city.get("planner", f"/api/v1/projects/{code}").json()
    assert len(detail["reviews"]) == 3
    actions = [
        e["action"]
        for e in city.get(
            "admin", "/api/v1/audit", params={"subject_type": "project", "subject_id": code}
        ).json()["items"]
    ]
    assert actions == ["project.create", "project.check", "project.status", "project.status"]
    entry = city.get("admin", "/api/v1/audit", params={"subject_id": code, "action": "project.status"}).json()
    assert entry["items"][-1]["before"] == {"status": "in_review"}
    assert entry["items"][-1]["after"] == {"status": "cleared"}
    assert entry["items"][-1]["actor"] == "test reviewer" and entry["items"][-1]["role"] == "reviewer"


def test_review_rules(city: Api) -> None:
    code = create(city, PASS_PARCEL).json()["code"]
    r = city.post(
        "reviewer", f"/api/v1/projects/{code}/reviews", json={"decided_by": "x", "decision": "approved"}
    )
    assert_error(r, 422, "invalid_request")  # never screened
    assert_error(
        city.post(
            "planner", "/api/v1/reviews", json={"check_id": "nope", "decided_by": "x", "decision": "approved"}
        ),
        403,
        "forbidden",
    )
    assert_error(
        city.post(
            "reviewer",
            "/api/v1/reviews",
            json={"check_id": "nope", "decided_by": "x", "decision": "approved"},
        ),
        404,
        "check_not_found",
    )
    assert_error(
        city.post(
            "reviewer", "/api/v1/reviews", json={"check_id": "nope", "decided_by": "x", "decision": "maybe"}
        ),
        422,
        "invalid_request",
    )


def test_rejected_is_final(city: Api) -> None:
    code, _ = lifecycle(city, REDLINE_PARCEL)
    status(city, code, "in_review")
    assert status(city, code, "rejected", reason="占用红线").json()["status"] == "rejected"
    assert_error(status(city, code, "in_review"), 409, "invalid_transition")


def test_concurrent_status_changes_apply_once(city: Api) -> None:
    code, _ = lifecycle(city, PASS_PARCEL)
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda _: status(city, code, "in_review"), range(6)))
    assert codes == [200, 409, 409, 409, 409, 409]


def test_search(city: Api) -> None:
    district = f"区-{unique()}"
    a = create(city, PASS_PARCEL, name="甲 港口物流园", district=district).json()["code"]
    b = create(city, REDLINE_PARCEL, name="乙 生态旅游", district=district).json()["code"]
    found = city.get("planner", "/api/v1/projects", params={"district": district}).json()
    assert found["total"] == 2 and [p["code"] for p in found["items"]] == sorted([a, b])
    assert [p["code"] for p in city.get("planner", "/api/v1/projects", params={"q": a}).json()["items"]] == [
        a
    ]
    by_name = city.get(
        "planner", "/api/v1/projects", params={"name": "港口物流", "district": district}
    ).json()
    assert [p["code"] for p in by_name["items"]] == [a]
    # bbox around the red-line parcel only
    loc = city.get("planner", f"/api/v1/projects/{b}/location").json()
    w, s, e, n = loc["bbox"]
    bbox = f"{w - 1e-4},{s - 1e-4},{e + 1e-4},{n + 1e-4}"
    in_box = city.get("planner", "/api/v1/projects", params={"bbox": bbox, "district": district}).json()
    assert [p["code"] for p in in_box["items"]] == [b]
    city.post("planner", f"/api/v1/projects/{b}/checks")
    screened = city.get(
        "planner", "/api/v1/projects", params={"status": "screened", "district": district}
    ).json()
    assert [p["code"] for p in screened["items"]] == [b]
    paged = city.get(
        "planner", "/api/v1/projects", params={"district": district, "limit": 1, "offset": 1}
    ).json()
    assert paged["total"] == 2 and len(paged["items"]) == 1
    assert_error(city.get("planner", "/api/v1/projects", params={"bbox": "1,2,3"}), 422, "invalid_request")
    # LIKE wildcards in the query are literal characters
    assert city.get("planner", "/api/v1/projects", params={"q": "%"}).json()["total"] == 0


def test_location_in_wgs84(city: Api) -> None:
    code = create(city, PASS_PARCEL, rect(1700, 400, 1800, 500)).json()["code"]
    loc = city.get("approval_system", f"/api/v1/projects/{code}/location")
    assert loc.status_code == 200
    body = loc.json()
    assert body["crs"] == "EPSG:4326"
    lon, lat = body["centroid"]
    assert 116.9 < lon < 117.1 and 30.8 < lat < 31.0  # Tongling GK origin sits on 117°E, ~30.9°N
    w, s, e, n = body["bbox"]
    assert w < lon < e and s < lat < n
    geom = shape(body["geometry"])
    assert geom.geom_type == "MultiPolygon" and geom.is_valid
    assert len(body["parcels"]["features"]) == 2
    assert abs(body["area_m2"] - 20_000) < 1
    # 库外项目不立项: the national locate call is told the code is not in the pool
    assert_error(city.get("approval_system", "/api/v1/projects/none/location"), 404, "project_not_in_pool")


@pytest.mark.parametrize("role", ["approval_system", "reviewer"])
def test_only_planners_and_admins_create(city: Api, role: str) -> None:
    assert_error(create(city, PASS_PARCEL, role=role), 403, "forbidden")


@pytest.mark.parametrize("blank", ["\n", "\t\r\n", "\u3000\u3000", " \u00a0 "])
def test_whitespace_only_reasons_do_not_clear_a_conflict(city: Api, blank: str) -> None:
    """Newlines, tabs or full-width spaces are no reasons: the conflict still needs a real decision."""
    code, _ = lifecycle(city, REDLINE_PARCEL)
    assert status(city, code, "in_review").status_code == 200
    r = city.post(
        "reviewer",
        f"/api/v1/projects/{code}/reviews",
        json={"decided_by": "会议", "decision": "approved", "reasons": blank},
    )
    assert r.status_code == 201, r.text
    assert_error(status(city, code, "cleared"), 409, "review_required")
    assert city.get("planner", f"/api/v1/projects/{code}").json()["status"] == "in_review"


def test_screening_a_final_project_stores_no_check(city: Api) -> None:
    """A cleared or rejected project can no longer be screened: the 409 leaves no stored check behind."""
    code, _ = lifecycle(city, REDLINE_PARCEL)
    status(city, code, "in_review")
    assert status(city, code, "rejected", reason="占用红线").status_code == 200

    def created_checks() -> int:
        params = {"action": "check.create", "limit": 1000}
        return len(city.get("admin", "/api/v1/audit", params=params).json()["items"])

    before = created_checks()
    assert_error(city.post("planner", f"/api/v1/projects/{code}/checks"), 409, "invalid_transition")
    assert created_checks() == before


def test_decision_time_keeps_its_instant(city: Api) -> None:
    """A meeting decided at 09:30 Beijing time is 01:30 UTC, on every backend (SQLite keeps no offset)."""
    from datetime import datetime

    _, check_id = lifecycle(city, REDLINE_PARCEL)
    r = city.post(
        "reviewer",
        "/api/v1/reviews",
        json={
            "check_id": check_id,
            "decided_by": "联合审查会议",
            "decided_at": "2026-11-23T09:30:00+08:00",
            "decision": "deferred",
        },
    )
    assert r.status_code == 201, r.text
    sent = datetime.fromisoformat("2026-11-23T09:30:00+08:00")
    assert datetime.fromisoformat(r.json()["decided_at"]) == sent
    listed = city.get("planner", "/api/v1/reviews", params={"check_id": check_id}).json()
    assert [datetime.fromisoformat(x["decided_at"]) for x in listed] == [sent]
