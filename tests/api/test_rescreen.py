"""Re-screening on publish: a durable job screens every project in flight against the new version, links
the checks (history kept) and records ``verdict.changed`` once per project whose verdict moved.

The city of tests.api.conftest (v1), then v2 adds a geological-hazard zone over the urban parcel
PASS_PARCEL: an industrial project there goes from pass to review (有条件: hazard assessment).
On SpatiaLite and PostGIS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from approval.worker import Worker
from layers.crs import OUTPUT_CRS
from runtime import rescreen
from tests.api.conftest import (
    PASS_PARCEL,
    REDLINE_PARCEL,
    Api,
    collection,
    make_keys,
    national_code,
    publish_city,
    rect,
    settings_for,
)

HAZARD = rect(1400, 300, 1700, 600)  # covers PASS_PARCEL (1500..1600 × 400..500)


def create(api: Api, parcel: Any, *, stage: str = "submitted", screen: bool = True) -> str:
    code = national_code()
    body = {
        "code": code,
        "name": f"项目 {code[-4:]}",
        "project_type": "industrial",
        "applicant": "某公司",
        "district": "铜官区",
        "stage": stage,
        "parcels": collection(parcel),
    }
    r = api.post("planner", "/api/v1/projects", json=body)
    assert r.status_code == 201, r.text
    if screen:
        r = api.post("planner", f"/api/v1/projects/{code}/checks")
        assert r.status_code == 201, r.text
    return code


def run_jobs(api: Api) -> None:
    worker = Worker(api.services.jobs, api.services.job_handlers(), name="test-worker")
    while worker.run_once():
        pass


def events(api: Api, type_: str, code: str | None = None) -> list[dict[str, Any]]:
    r = api.get("approval_system", "/api/v1/events", params={"type": type_, "limit": 1000})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if code is None or e["subject"]["id"] == code]


@pytest.fixture(scope="module")
def published(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """v1 with projects in every stage, then v2 (hazard zone) published; no worker runs on its own."""
    tmp = tmp_path_factory.mktemp("rescreen")
    app = create_app(settings_for(module_db_url, tmp, worker_in_process=False))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        publish_city(api, tmp)
        run_jobs(api)  # v1's re-screening: nothing in flight yet
        codes = {
            "passing": create(api, PASS_PARCEL),
            "conflict": create(api, REDLINE_PARCEL),
            "unscreened": create(api, PASS_PARCEL, screen=False),
            "planning": create(api, PASS_PARCEL, stage="planning", screen=False),
            "cleared": create(api, PASS_PARCEL),
            "reviewing": create(api, PASS_PARCEL),
        }
        for status in ("in_review", "cleared"):
            who = "planner" if status == "in_review" else "reviewer"
            r = api.post(who, f"/api/v1/projects/{codes['cleared']}/status", json={"status": status})
            assert r.status_code == 200, r.text
        r = api.post("planner", f"/api/v1/projects/{codes['reviewing']}/status", json={"status": "in_review"})
        assert r.status_code == 200, r.text
        hazard = tmp / "hazard.geojson"
        gpd.GeoDataFrame({"fid_src": ["GH1"]}, geometry=[HAZARD], crs="EPSG:4548").to_crs(OUTPUT_CRS).to_file(
            hazard, driver="GeoJSON"
        )
        with hazard.open("rb") as fh:
            r = api.post(
                "admin",
                "/api/v1/layers",
                files={"file": ("hazard.geojson", fh, "application/geo+json")},
                data={"kind": "geohazard_zone", "name": "geohazard"},
            )
        assert r.status_code == 201, r.text
        version = api.post("admin", "/api/v1/blueprints", json={}).json()["version"]
        r = api.post("admin", f"/api/v1/blueprints/{version}/publish")
        assert r.status_code == 200, r.text
        job_id = r.json()["rescreen_job_id"]
        assert api.get("admin", f"/api/v1/jobs/{job_id}").json()["status"] == "queued"
        run_jobs(api)
        yield {"api": api, "codes": codes, "version": version, "job_id": job_id}
    app.state.services.close()


def test_the_publish_queues_a_durable_job_that_finishes_with_progress(published: dict[str, Any]) -> None:
    api = published["api"]
    job = api.get("admin", f"/api/v1/jobs/{published['job_id']}").json()
    assert job["kind"] == "rescreen" and job["status"] == "succeeded" and job["progress"] == 1.0
    assert job["result_id"] == published["version"]
    (event,) = events(api, "blueprint.published", None)[-1:]
    assert event["payload"]["rescreen_job_id"] == published["job_id"]


def test_a_changed_verdict_is_linked_and_recorded_once(published: dict[str, Any]) -> None:
    api, code, version = published["api"], published["codes"]["passing"], published["version"]
    project = api.get("planner", f"/api/v1/projects/{code}").json()
    assert project["status"] == "screened" and project["latest_verdict"] == "review"
    assert [c["blueprint_version"] for c in project["checks"]] == ["v1", version]  # history kept
    assert [c["verdict"] for c in project["checks"]] == ["pass", "review"]
    (changed,) = events(api, "verdict.changed", code)
    payload = changed["payload"]
    assert (payload["before"], payload["after"], payload["blueprint_version"]) == ("pass", "review", version)
    assert payload["kinds_changed"] == [
        {"kind": "geohazard_zone", "name_zh": "地质灾害高易发区", "before": None, "after": "conditional"}
    ]
    assert payload["check_id"] == project["latest_check_id"]


def test_every_project_in_flight_is_rescreened_and_final_or_planning_ones_are_not(
    published: dict[str, Any],
) -> None:
    api, codes, version = published["api"], published["codes"], published["version"]
    detail = {k: api.get("planner", f"/api/v1/projects/{c}").json() for k, c in codes.items()}
    for key in ("passing", "conflict", "unscreened", "reviewing"):
        assert detail[key]["checks"][-1]["blueprint_version"] == version, key
        assert len(events(api, "project.rescreened", codes[key])) == 1, key
    assert detail["unscreened"]["status"] == "screened"  # a submitted project is screened by it
    assert detail["reviewing"]["status"] == "in_review"  # a project in review stays there
    assert detail["conflict"]["latest_verdict"] == "conflict"
    for key in ("cleared", "planning"):
        assert all(c["blueprint_version"] != version for c in detail[key]["checks"]), key
        assert events(api, "project.rescreened", codes[key]) == [], key
    # one verdict.changed per affected project: the unchanged conflict and the never-screened one have none
    changed = {e["subject"]["id"] for e in events(api, "verdict.changed")}
    assert changed == {codes["passing"], codes["reviewing"]}


def test_running_the_job_again_links_nothing_twice(published: dict[str, Any]) -> None:
    """What a worker taking over a killed job's lease does: every project is found done and skipped."""
    api = published["api"]
    services = api.services
    before = api.get("admin", "/api/v1/events", params={"limit": 1000}).json()["next"]
    with services.engine.connect() as conn:
        links = conn.execute(sa.text("SELECT count(*) FROM project_checks")).scalar()
    job = services.jobs.get(published["job_id"], raw=True)
    assert rescreen.run(services, job, Path("."), lambda _f: None) == published["version"]
    assert (
        rescreen.rescreen_project(
            services, published["codes"]["passing"], published["version"], "another-job"
        )
        is None
    )
    with services.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM project_checks")).scalar() == links
    assert api.get("admin", "/api/v1/events", params={"after": before}).json()["items"] == []


def test_a_job_killed_midway_resumes_where_it_stopped(published: dict[str, Any]) -> None:
    """A check stored but not linked (the worker died between the two) is found again by its job-derived
    id: the resumed job links it once and screens nothing twice."""
    api = published["api"]
    services = api.services
    code = create(api, PASS_PARCEL)  # screened against the newest version by hand: nothing to do
    assert rescreen.rescreen_project(services, code, published["version"], "J-other") is None
    fresh = create(api, PASS_PARCEL, screen=False)
    with services.engine.connect() as conn:
        checks_before = conn.execute(sa.text("SELECT count(*) FROM checks")).scalar()
    first = rescreen.rescreen_project(services, fresh, published["version"], "J-resume")
    assert first is not None
    assert rescreen.rescreen_project(services, fresh, published["version"], "J-resume") is None
    with services.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM checks")).scalar() == checks_before + 1
    assert len(events(api, "check.linked", fresh)) == 1


def test_the_job_is_queued_in_the_publish_transaction_and_audited(published: dict[str, Any]) -> None:
    """The lease-based take-over of a killed worker's job is covered in tests/api/test_jobs.py."""
    api = published["api"]
    r = api.get("admin", "/api/v1/audit", params={"subject_id": published["job_id"]})
    actions = [e["action"] for e in r.json()["items"]]
    assert actions[:3] == ["job.create", "job.claim", "job.status"]


def test_a_changed_verdict_raises_a_warning_until_a_planner_acknowledges_it(
    published: dict[str, Any],
) -> None:
    api, codes = published["api"], published["codes"]
    project = api.get("reviewer", f"/api/v1/projects/{codes['passing']}").json()
    warning = project["warning"]
    assert (warning["before"], warning["after"], warning["blueprint_version"]) == (
        "pass",
        "review",
        published["version"],
    )
    assert api.get("planner", f"/api/v1/projects/{codes['conflict']}").json()["warning"] is None
    r = api.post("reviewer", f"/api/v1/projects/{codes['passing']}/warning/ack", json={})
    assert r.status_code == 403
    r = api.post(
        "planner", f"/api/v1/projects/{codes['passing']}/warning/ack", json={"note": "已通知建设单位"}
    )
    assert r.status_code == 200 and r.json()["warning"] is None, r.text
    r = api.post("planner", f"/api/v1/projects/{codes['passing']}/warning/ack", json={})
    assert r.status_code == 409 and r.json()["code"] == "no_warning"
    (ack,) = events(api, "warning.acknowledged", codes["passing"])
    assert ack["payload"]["acknowledged_seq"] == warning["seq"] and ack["payload"]["note"] == "已通知建设单位"
    audit = api.get(
        "admin", "/api/v1/audit", params={"subject_id": codes["passing"], "action": "project.warning_ack"}
    ).json()["items"]
    assert len(audit) == 1 and audit[0]["actor"] == "test planner"


def test_clearing_needs_a_check_against_the_latest_version(published: dict[str, Any], tmp_path: Path) -> None:
    """A project whose latest check is against v1 while v2 is published is refused, naming v2."""
    api, version = published["api"], published["version"]
    code = create(api, PASS_PARCEL, screen=False)
    r = api.post("planner", f"/api/v1/projects/{code}/checks", json={"blueprint_version": "v1"})
    assert r.status_code == 201, r.text
    assert (
        api.post("planner", f"/api/v1/projects/{code}/status", json={"status": "in_review"}).status_code
        == 200
    )
    r = api.post("reviewer", f"/api/v1/projects/{code}/status", json={"status": "cleared"})
    assert r.status_code == 409 and r.json()["code"] == "check_not_latest", r.text
    assert version in r.json()["detail"] and r.json()["message_zh"].startswith("须先按最新发布的蓝图版本")
    api.services.settings.clear_requires_latest = False
    try:
        r = api.post("reviewer", f"/api/v1/projects/{code}/status", json={"status": "cleared"})
        assert r.status_code == 200 and r.json()["status"] == "cleared"  # the setting switches the policy off
    finally:
        api.services.settings.clear_requires_latest = True


def test_codes_not_in_the_pool_are_not_located(published: dict[str, Any]) -> None:
    """库外项目不立项: the national locate call and the approval system's opinion read say so."""
    api = published["api"]
    for path in (
        "/api/v1/projects/2026-340700-00-00-000000/location",
        "/api/v1/projects/2026-340700-00-00-000000/opinions",
    ):
        r = api.get("approval_system", path)
        assert r.status_code == 404 and r.json()["code"] == "project_not_in_pool", r.text
        assert r.json()["message_zh"].startswith("库外项目不立项")


def test_a_publish_with_nothing_in_flight_queues_no_job(fresh: Api, tmp_path: Path) -> None:
    publish_city(fresh, tmp_path)
    (event,) = events(fresh, "blueprint.published")
    assert event["payload"]["rescreen_job_id"] is None and event["payload"]["in_flight"] == 0
    with fresh.services.engine.connect() as conn:
        kinds = set(conn.execute(sa.text("SELECT kind FROM jobs")).scalars())
    assert kinds <= {"tiles"}, kinds  # the map's tile archive is queued by every publish; no re-screening


def test_publishing_from_the_cli_queues_the_rescreening_too(
    published: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.main import build_app

    api = published["api"]
    settings = api.services.settings
    monkeypatch.setenv("BLUEPRINT_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(settings.data_dir))
    version = api.post("admin", "/api/v1/blueprints", json={}).json()["version"]
    result = CliRunner().invoke(build_app(), ["publish", version, "--by", "规划局管理员"])
    assert result.exit_code == 0, result.output
    (event,) = [e for e in events(api, "blueprint.published") if e["subject"]["id"] == version]
    job = api.get("admin", f"/api/v1/jobs/{event['payload']['rescreen_job_id']}").json()
    assert job["kind"] == "rescreen" and job["status"] == "queued" and job["created_by"] == "规划局管理员"
    run_jobs(api)
    assert api.get("admin", f"/api/v1/jobs/{job['job_id']}").json()["status"] == "succeeded"
