"""POST/GET /api/v1/checks: the result contract, stored text, idempotency, jobs, bad input."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from tests.api.conftest import (
    JOB_THRESHOLD,
    OUTSIDE_PARCEL,
    PASS_PARCEL,
    REDLINE_PARCEL,
    Api,
    collection,
    rect,
    unique,
)
from tests.api.test_service import assert_error


def screen(city: Api, *geoms, role: str = "approval_system", key: str | None = None, **body):
    headers = {"Idempotency-Key": key} if key else {}
    return city.post(
        role,
        "/api/v1/checks",
        headers=headers,
        json={"project_type": "industrial", "parcels": collection(*geoms), **body},
    )


def test_pass_and_conflict_verdicts(city: Api) -> None:
    r = screen(city, PASS_PARCEL)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["verdict"] == "pass" and result["blueprint_version"] == "v1"
    assert r.headers["Location"] == f"/api/v1/checks/{result['check_id']}"
    r = screen(city, REDLINE_PARCEL)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["verdict"] == "conflict"
    hit = result["parcels"][0]["conflicts"][0]
    assert hit["kind"] == "ecological_redline" and hit["rule"] == "forbidden"
    assert abs(hit["overlap_area_m2"] - 10_000) < 1
    assert {"check_id", "blueprint_version", "project_type", "verdict", "parcels"} <= set(result)
    assert result["parcels"][0]["explanation_zh"] and result["parcels"][0]["explanation_en"]


def test_get_returns_the_stored_text_byte_for_byte(city: Api) -> None:
    r = screen(city, REDLINE_PARCEL, PASS_PARCEL)
    assert r.status_code == 201
    check_id = r.json()["check_id"]
    for role in ("planner", "reviewer", "admin", "approval_system"):
        again = city.get(role, f"/api/v1/checks/{check_id}")
        assert again.status_code == 200
        assert again.content == r.content
        assert again.headers["content-type"].startswith("application/json")


def test_same_idempotency_key_returns_the_same_check(city: Api) -> None:
    key = unique("idem")
    first = screen(city, PASS_PARCEL, key=key)
    second = screen(city, PASS_PARCEL, key=key)
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.content == second.content
    # the same key with a different submission is refused, not silently answered
    assert_error(screen(city, REDLINE_PARCEL, key=key), 409, "idempotency_key_reused")


def test_concurrent_retries_with_one_key_make_one_check(city: Api) -> None:
    key = unique("race")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: screen(city, PASS_PARCEL, key=key), range(8)))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    check_id = responses[0].json()["check_id"]
    audit = city.get("admin", "/api/v1/audit", params={"subject_id": check_id}).json()["items"]
    assert [e["action"] for e in audit] == ["check.create"]


def test_parallel_checks_lose_nothing(city: Api) -> None:
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda i: screen(city, rect(1200 + i * 50, 100, 1240 + i * 50, 140)), range(12))
        )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    ids = {r.json()["check_id"] for r in responses}
    assert len(ids) == 12
    for r in responses:
        assert city.get("reviewer", f"/api/v1/checks/{r.json()['check_id']}").content == r.content


def test_multipart_upload(city: Api) -> None:
    data = json.dumps(collection(REDLINE_PARCEL)).encode()
    r = city.post(
        "planner",
        "/api/v1/checks",
        files={"file": ("parcels.geojson", data, "application/geo+json")},
        data={"project_type": "linear_infrastructure"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["project_type"] == "linear_infrastructure"
    assert r.json()["verdict"] in ("review", "conflict")


def test_bad_input_is_a_clear_4xx(city: Api) -> None:
    assert_error(screen(city, PASS_PARCEL, project_type="casino"), 422, "unknown_project_type")
    assert_error(screen(city, PASS_PARCEL, blueprint_version="v99"), 404, "blueprint_not_found")
    assert_error(screen(city, OUTSIDE_PARCEL), 422, "parcel_outside_city")
    r = city.post(
        "planner",
        "/api/v1/checks",
        json={"project_type": "industrial", "parcels": {"type": "FeatureCollection", "features": []}},
    )
    assert_error(r, 422, "invalid_request")
    r = city.post(
        "planner",
        "/api/v1/checks",
        json={
            "project_type": "industrial",
            "parcels": {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Point", "coordinates": [117, 30]},
                    }
                ],
            },
        },
    )
    assert_error(r, 422, "invalid_request")
    r = city.post(
        "planner",
        "/api/v1/checks",
        files={"file": ("p.geojson", b"garbage")},
        data={"project_type": "industrial"},
    )
    assert r.status_code == 422 and set(r.json()) - {"message_zh"} == {"code", "detail"}, r.text
    r = city.post(
        "planner", "/api/v1/checks", data={"project_type": "industrial"}, files={"other": ("x.txt", b"1")}
    )
    assert_error(r, 422, "invalid_request")


def test_large_submission_becomes_a_job(city: Api) -> None:
    n = JOB_THRESHOLD + 5
    geoms = [
        rect(1010 + (i % 20) * 40, 10 + (i // 20) * 40, 1040 + (i % 20) * 40, 40 + (i // 20) * 40)
        for i in range(n)
    ]
    key = unique("job")
    r = screen(city, *geoms, role="planner", key=key)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running", "succeeded") and r.headers["Location"].endswith(
        job["job_id"]
    )
    # a retry with the same key while (or after) the job runs answers with that job or its result
    assert screen(city, *geoms, role="planner", key=key).status_code in (200, 202)
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = city.get("approval_system", f"/api/v1/jobs/{job['job_id']}").json()
    assert job["status"] == "succeeded", job
    result = city.get("approval_system", job["result"])
    assert result.status_code == 200 and len(result.json()["parcels"]) == n
    retry = screen(city, *geoms, role="planner", key=key)
    assert retry.status_code == 200 and retry.content == result.content


def test_unknown_job(city: Api) -> None:
    assert_error(city.get("planner", "/api/v1/jobs/J0"), 404, "job_not_found")
