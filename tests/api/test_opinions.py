"""Opinion rounds (意见征询) in the planning stage: department keys, a holiday calendar, an overdue
department, closing by the planner after the deadline, the approval system reading the opinions, and
the audit log and event feed recording every step. On SpatiaLite and PostGIS.

Calendar: National Day 2026-10-01..07 off, Saturday 2026-10-10 a make-up working day (调休). A round
opened on Wednesday 2026-09-30 with 3 working days is due on 2026-10-10 (10-08, 10-09, 10-10).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from runtime.keys import KeyStore
from tests.api.conftest import (
    PASS_PARCEL,
    Api,
    collection,
    make_keys,
    national_code,
    publish_city,
    settings_for,
)

CALENDAR = """
holidays = [2026-10-01, 2026-10-02, 2026-10-03, 2026-10-04, 2026-10-05, 2026-10-06, 2026-10-07]
workdays = [2026-10-10]
"""
DEPARTMENTS = ("natural_resources", "ecology_environment", "water")
OPENED = date(2026, 9, 30)


@pytest.fixture(scope="module")
def flow(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("opinions")
    (tmp / "calendar.toml").write_text(CALENDAR, encoding="utf-8")
    app = create_app(
        settings_for(module_db_url, tmp, calendar_file=tmp / "calendar.toml", worker_in_process=False)
    )
    with TestClient(app) as client:
        keys = make_keys(app.state.services)
        store = KeyStore(app.state.services.engine)
        for dept in DEPARTMENTS:
            keys[dept] = store.create(f"{dept} 经办人", "department", department=dept)[0]
        api = Api(app, client, keys)
        publish_city(api, tmp)
        app.state.services.planning.today = lambda: OPENED
        yield api
    app.state.services.close()


def planning_project(api: Api) -> str:
    code = national_code()
    r = api.post(
        "planner",
        "/api/v1/projects",
        json={
            "code": code,
            "name": "滨江大道改造",
            "project_type": "industrial",
            "applicant": "市城投",
            "district": "铜官区",
            "stage": "planning",
            "parcels": collection(PASS_PARCEL),
        },
    )
    assert r.status_code == 201 and r.json()["status"] == "planning", r.text
    return code


def open_round(
    api: Api, code: str, departments: tuple[str, ...] = DEPARTMENTS, days: int = 3
) -> dict[str, Any]:
    r = api.post(
        "planner",
        f"/api/v1/projects/{code}/rounds",
        json={"departments": list(departments), "working_days": days, "note": "前期策划意见"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def answer(api: Api, who: str, code: str, round_id: str, **body: Any) -> Any:
    return api.post(who, f"/api/v1/projects/{code}/rounds/{round_id}/opinions", json=body)


def test_a_full_round_with_an_overdue_department(flow: Api) -> None:
    code = planning_project(flow)
    round_ = open_round(flow, code)
    assert round_["due_on"] == "2026-10-10"  # the holiday week does not count, the make-up Saturday does
    assert round_["status_zh"] == "征询中"
    assert [d["name_zh"] for d in round_["departments"]] == ["自然资源和规划局", "生态环境局", "水务局"]
    assert {d["state_zh"] for d in round_["departments"]} == {"待答复"}
    rid = round_["round_id"]

    r = answer(flow, "water", code, rid, answer="agree")
    assert r.status_code == 201, r.text
    r = answer(
        flow,
        "ecology_environment",
        code,
        rid,
        answer="agree_with_conditions",
        conditions=["施工期设置沉淀池，废水不得直排"],
        reasons="位于长江岸线一公里内",
    )
    assert r.status_code == 201, r.text

    # before the deadline the planner cannot close a round someone has not answered
    r = flow.post(
        "planner",
        f"/api/v1/projects/{code}/rounds/{rid}/close",
        json={"outcome": "submitted", "reason": "期限届满"},
    )
    assert r.status_code == 409 and r.json()["code"] == "round_not_due", r.text
    assert "message_zh" in r.json()

    flow.services.planning.today = lambda: date(2026, 10, 12)  # Monday after the deadline
    try:
        view = flow.get("approval_system", f"/api/v1/projects/{code}/opinions").json()
        (current,) = view["rounds"]
        states = {d["department"]: d["state_zh"] for d in current["departments"]}
        assert states == {
            "natural_resources": "逾期未答复",
            "ecology_environment": "已答复",
            "water": "已答复",
        }
        assert current["summary"]["overdue"] == 1 and current["summary"]["agree_with_conditions"] == 1
        r = flow.post(
            "planner",
            f"/api/v1/projects/{code}/rounds/{rid}/close",
            json={"outcome": "submitted", "reason": "期限届满，自然资源和规划局逾期未答复"},
        )
        assert r.status_code == 200, r.text
        closed = r.json()
    finally:
        flow.services.planning.today = lambda: OPENED
    assert closed["status"] == "closed" and closed["outcome_zh"] == "转入报建"
    assert flow.get("planner", f"/api/v1/projects/{code}").json()["status"] == "submitted"

    # the approval system reads the opinions: Chinese labels, conditions and reasons kept
    view = flow.get("approval_system", f"/api/v1/projects/{code}/opinions").json()
    assert view["status"] == "submitted"
    eco = next(d for d in view["rounds"][0]["departments"] if d["department"] == "ecology_environment")
    assert eco["opinion"]["answer_zh"] == "有条件同意"
    assert eco["opinion"]["conditions"] == ["施工期设置沉淀池，废水不得直排"]
    late = next(d for d in view["rounds"][0]["departments"] if d["department"] == "natural_resources")
    assert late["state_zh"] == "逾期未答复" and "opinion" not in late  # overdue as of the closing day

    # a late answer on the closed round is refused
    r = answer(flow, "natural_resources", code, rid, answer="agree")
    assert r.status_code == 409 and r.json()["code"] == "round_closed"

    audit = flow.get("admin", "/api/v1/audit", params={"subject_id": code, "limit": 100}).json()["items"]
    actions = [e["action"] for e in audit]
    assert actions == [
        "project.create",
        "round.open",
        "opinion.answer",
        "opinion.answer",
        "round.close",
        "project.status",
    ]
    feed = flow.get("approval_system", "/api/v1/events", params={"limit": 1000}).json()["items"]
    mine = [e["type"] for e in feed if e["subject"]["id"] == code]
    assert mine == [
        "project.created",
        "opinion.round_opened",
        "opinion.received",
        "opinion.received",
        "opinion.round_closed",
        "project.status",
    ]


def test_a_department_key_answers_only_for_its_own_department(flow: Api) -> None:
    code = planning_project(flow)
    rid = open_round(flow, code)["round_id"]
    r = answer(flow, "water", code, rid, department="natural_resources", answer="agree")
    assert r.status_code == 403 and r.json()["code"] == "wrong_department", r.text
    assert r.json()["message_zh"] == "只能以本部门名义答复意见"
    refused = flow.get("admin", "/api/v1/audit", params={"subject_id": code, "action": "opinion.refused"})
    (entry,) = refused.json()["items"]
    assert (
        entry["detail"]["asked_for"] == "natural_resources" and entry["detail"]["key_department"] == "water"
    )
    # planners and reviewers do not answer for departments; departments do not open rounds
    assert answer(flow, "planner", code, rid, department="water", answer="agree").status_code == 403
    r = flow.post(
        "water", f"/api/v1/projects/{code}/rounds", json={"departments": ["water"], "working_days": 1}
    )
    assert r.status_code == 403
    # an admin records a paper answer, naming the department
    r = answer(flow, "admin", code, rid, department="natural_resources", answer="no_opinion")
    assert r.status_code == 201, r.text


def test_opinions_are_appended_never_edited(flow: Api) -> None:
    code = planning_project(flow)
    rid = open_round(flow, code)["round_id"]
    assert answer(flow, "water", code, rid, answer="agree").status_code == 201
    r = answer(flow, "water", code, rid, answer="disagree", reasons="改变主意")
    assert r.status_code == 409 and r.json()["code"] == "already_answered"
    for statement in ("UPDATE opinions SET answer = 'disagree'", "DELETE FROM opinions"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with flow.services.engine.begin() as conn:
                conn.execute(sa.text(statement))


def test_the_last_answer_closes_the_round_and_a_disagreement_returns_the_project(flow: Api) -> None:
    code = planning_project(flow)
    rid = open_round(flow, code, ("water", "ecology_environment"))["round_id"]
    assert answer(flow, "water", code, rid, answer="agree").status_code == 201
    r = answer(flow, "ecology_environment", code, rid, answer="disagree", reasons="占用饮用水水源保护区")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "closed" and r.json()["outcome"] == "returned"
    assert r.json()["outcome_zh"] == "退回"
    assert flow.get("planner", f"/api/v1/projects/{code}").json()["status"] == "planning"
    # returned: the planner may revise and ask again
    second = open_round(flow, code, ("ecology_environment",))
    assert second["seq"] == 2
    r = answer(flow, "ecology_environment", code, second["round_id"], answer="agree")
    assert r.json()["outcome"] == "submitted"
    assert flow.get("planner", f"/api/v1/projects/{code}").json()["status"] == "submitted"
    assert len(flow.get("approval_system", f"/api/v1/projects/{code}/opinions").json()["rounds"]) == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"answer": "agree_with_conditions"}, "invalid_answer"),
        ({"answer": "disagree", "reasons": "  "}, "invalid_answer"),
        ({"answer": "maybe"}, "invalid_request"),
    ],
)
def test_incomplete_answers_are_refused(flow: Api, body: dict[str, Any], code: str) -> None:
    project = planning_project(flow)
    rid = open_round(flow, project, ("water",))["round_id"]
    r = answer(flow, "water", project, rid, **body)
    assert r.status_code == 422 and r.json()["code"] == code, r.text


def test_rounds_need_a_planning_project_known_departments_and_one_open_round(flow: Api) -> None:
    code = planning_project(flow)
    r = flow.post(
        "planner", f"/api/v1/projects/{code}/rounds", json={"departments": ["mars"], "working_days": 2}
    )
    assert r.status_code == 422 and r.json()["code"] == "unknown_department"
    open_round(flow, code, ("water",))
    r = flow.post(
        "planner", f"/api/v1/projects/{code}/rounds", json={"departments": ["water"], "working_days": 2}
    )
    assert r.status_code == 409 and r.json()["code"] == "round_open"
    submitted = national_code()
    r = flow.post(
        "planner",
        "/api/v1/projects",
        json={
            "code": submitted,
            "name": "厂房",
            "project_type": "industrial",
            "applicant": "某公司",
            "district": "铜官区",
            "parcels": collection(PASS_PARCEL),
        },
    )
    assert r.status_code == 201 and r.json()["status"] == "submitted"
    r = flow.post(
        "planner", f"/api/v1/projects/{submitted}/rounds", json={"departments": ["water"], "working_days": 2}
    )
    assert r.status_code == 409 and r.json()["code"] == "not_in_planning"
    assert flow.get("planner", "/api/v1/projects/NOPE/opinions").status_code == 404


def test_departments_are_listed_with_chinese_names(flow: Api) -> None:
    r = flow.get("water", "/api/v1/departments")
    assert r.status_code == 200
    names = [d["name_zh"] for d in r.json()]
    assert names == [
        "发展改革委",
        "自然资源和规划局",
        "生态环境局",
        "水务局",
        "住房城乡建设局",
        "林业局",
        "文物局",
        "交通运输局",
    ]


def test_department_keys_are_created_by_admins_with_a_known_department(flow: Api) -> None:
    r = flow.post(
        "admin", "/api/v1/keys", json={"name": "林业局", "role": "department", "department": "forestry"}
    )
    assert r.status_code == 201 and r.json()["department"] == "forestry"
    r = flow.post("admin", "/api/v1/keys", json={"name": "x", "role": "department"})
    assert r.status_code == 422
    r = flow.post("admin", "/api/v1/keys", json={"name": "x", "role": "department", "department": "mars"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_department"
