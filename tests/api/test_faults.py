"""Fault tests (issue #16 item 5): a real server process SIGKILLed mid-publish, mid-job and mid-upload,
then restarted on the same database and data dir. On SpatiaLite and PostGIS.

After every restart: no half-published version (a version is a draft or published with all its pieces,
their count as its summary says), every check answered 201 before the kill is stored byte for byte with
its audit entry, every job ends succeeded or failed with a reason, no upload file is left. The server
stops dead at the chosen point (tests/fault_server.py), so each kill lands where it is meant to.
A worker killed mid-webhook-delivery is tests/api/test_events_webhooks.py; disk full is test_disk_full.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.uploads import uploads_root
from approval.rescreen import TILES_KIND
from runtime.db import make_engine
from tests.api.conftest import (
    LAYERS,
    PASS_PARCEL,
    REDLINE_PARCEL,
    Api,
    collection,
    publish_city,
    settings_for,
    write_layer,
)
from tests.api.test_upload_jobs import patches
from tests.serving import ServerProcess

pytestmark = pytest.mark.slow

ADMIN, PLANNER = {"X-API-Key": "dev-admin-key"}, {"X-API-Key": "dev-planner-key"}


def env_for(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {"BLUEPRINT_DATABASE_URL": db_url, "BLUEPRINT_DATA_DIR": str(data_dir),
            "BLUEPRINT_DEV_MODE": "true", "BLUEPRINT_RATE_LIMITS_ENABLED": "false",
            "BLUEPRINT_JOB_LEASE_SECONDS": "2", **extra}


@contextlib.contextmanager
def server(env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = ServerProcess(env)
    try:
        yield proc
    finally:
        proc.stop()


def wait_for(marker: Path, proc: ServerProcess, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        assert proc.proc.poll() is None, proc.stderr()
        assert time.monotonic() < deadline, f"the server never reached the pause point: {proc.stderr()}"
        time.sleep(0.05)


def rows(db_url: str, query: str, **params: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query), params).all())
    finally:
        engine.dispose()


def jobs_settle(http: httpx.Client, db_url: str, seconds: float = 40) -> list[Any]:
    """Every job's final row once none is queued or running (the restarted worker's work)."""
    deadline = time.monotonic() + seconds
    while True:
        found = rows(db_url, "SELECT job_id, kind, status, error_code, error_detail, attempts FROM jobs")
        if all(j.status in ("succeeded", "failed") for j in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def assert_consistent(db_url: str) -> None:
    """No half-published version: each one's pieces are all there, as many as its summary says."""
    for version, status, summary in rows(db_url, "SELECT version, status, summary FROM blueprints"):
        pieces = rows(db_url, "SELECT count(*) FROM pieces WHERE version = :v", v=version)[0][0]
        stated = (summary if isinstance(summary, dict) else json.loads(summary))["piece_count"]
        assert status in ("draft", "published") and pieces == stated > 0, (version, status, pieces, stated)


def assert_ended_with_reasons(found: list[Any]) -> None:
    for job in found:
        assert job.status in ("succeeded", "failed"), job
        if job.status == "failed":
            assert job.error_code and job.error_detail, job


class Checks(threading.Thread):
    """Single-parcel checks sent one after another until stopped; what was answered 201 is kept."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.answered = base, threading.Event(), {}

    def run(self) -> None:
        body = {"project_type": "industrial", "parcels": collection(PASS_PARCEL, REDLINE_PARCEL)}
        with httpx.Client(base_url=self.base, timeout=30, headers=PLANNER) as http:
            while not self.stop.is_set():
                try:
                    r = http.post("/api/v1/checks", json=body)
                except httpx.HTTPError:  # the server is gone
                    return
                if r.status_code == 201:
                    self.answered[r.json()["check_id"]] = r.text


def city_with_a_draft(db_url: str, data_dir: Path) -> str:
    """v1 published (checks screen against it) and a draft v2 to publish; set up in process."""
    app = create_app(settings_for(db_url, data_dir, dev_mode=True, worker_in_process=False))
    with TestClient(app) as client:
        api = Api(app, client, {"admin": "dev-admin-key"})
        publish_city(api, data_dir)
        r = api.post("admin", "/api/v1/blueprints", json={"layers": ["ecological_redline", "urban_boundary"]})
        assert r.status_code == 201, r.text
        version = str(r.json()["version"])
    app.state.services.close()
    return version


@pytest.mark.parametrize("point", ["publish", "publish_committed"])
def test_sigkill_during_publish_leaves_a_whole_version_and_every_answered_check(
        db_url: str, tmp_path: Path, point: str) -> None:
    draft = city_with_a_draft(db_url, tmp_path)
    marker = tmp_path / "paused"
    with server(env_for(db_url, tmp_path, FAULT_PAUSE=point, FAULT_MARKER=str(marker))) as proc:
        checks = Checks(proc.base)
        checks.start()
        def publish() -> None:
            with contextlib.suppress(httpx.HTTPError):  # no answer comes: the server is killed
                httpx.post(f"{proc.base}/api/v1/blueprints/{draft}/publish", headers=ADMIN, timeout=60)

        publishing = threading.Thread(target=publish, daemon=True)
        deadline = time.monotonic() + 30
        while len(checks.answered) < 3:  # the first loads v1's screener
            assert time.monotonic() < deadline and checks.is_alive(), "no check was answered"
            time.sleep(0.05)
        publishing.start()
        wait_for(marker, proc)
        time.sleep(0.5)  # checks go on while the publish is held (on SQLite they wait for its lock)
        proc.kill()
        checks.stop.set()
        checks.join(timeout=30)
    assert checks.answered, "checks were answered before the kill"
    status = rows(db_url, "SELECT status FROM blueprints WHERE version = :v", v=draft)[0][0]
    assert status == ("draft" if point == "publish" else "published")
    assert_consistent(db_url)

    with server(env_for(db_url, tmp_path)) as proc, httpx.Client(base_url=proc.base, timeout=60) as http:
        for check_id, text in checks.answered.items():
            r = http.get(f"/api/v1/checks/{check_id}", headers=PLANNER)
            assert r.status_code == 200 and r.text == text, check_id
        audited = {r[0] for r in rows(db_url, "SELECT subject_id FROM audit_log WHERE action = :a",
                                      a="check.create")}
        assert set(checks.answered) <= audited, "every stored check has its audit entry"
        if point == "publish":  # rolled back whole: it can be published now, once
            assert http.post(f"/api/v1/blueprints/{draft}/publish", headers=ADMIN).status_code == 200
        assert http.get(f"/api/v1/blueprints/{draft}", headers=PLANNER).json()["status"] == "published"
        found = jobs_settle(http, db_url)
    keyed = rows(db_url, "SELECT count(*) FROM jobs WHERE idempotency_key = :k", k=f"{TILES_KIND}:{draft}")
    assert keyed[0][0] == 1, "the publish queued its map tiles exactly once, in its own transaction"
    assert_ended_with_reasons(found)
    assert_consistent(db_url)


def test_sigkill_during_a_layer_import_job_is_taken_up_after_restart(db_url: str, tmp_path: Path) -> None:
    layer = patches(tmp_path, 1200)
    marker = tmp_path / "paused"
    with server(env_for(db_url, tmp_path, FAULT_PAUSE="import_chunk", FAULT_MARKER=str(marker))) as proc:
        with layer.open("rb") as fh:
            r = httpx.post(f"{proc.base}/api/v1/layers", headers={**ADMIN, "Prefer": "respond-async"},
                           files={"file": (layer.name, fh)}, data={"kind": "permanent_farmland"}, timeout=60)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        wait_for(marker, proc)  # the in-process worker has written the first chunk, uncommitted
        held = httpx.get(f"{proc.base}/api/v1/jobs/{job_id}", headers=ADMIN, timeout=30).json()
        assert held["status"] == "running" and held["attempts"] == 1
        proc.kill()
    stored_input = tmp_path / "jobs" / job_id / layer.name
    assert stored_input.read_bytes() == layer.read_bytes(), "the input outlives the killed worker"
    assert rows(db_url, "SELECT count(*) FROM layer_features")[0][0] == 0, "nothing of the import committed"

    with server(env_for(db_url, tmp_path)) as proc, httpx.Client(base_url=proc.base, timeout=60) as http:
        found = jobs_settle(http, db_url)
        job = http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json()
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert http.get(job["result"], headers=ADMIN).json()["feature_count"] == 1200
    assert_ended_with_reasons(found)
    assert rows(db_url, "SELECT count(*) FROM layer_features")[0][0] == 1200, "stored once"
    assert not stored_input.parent.exists(), "the input goes when the job ends"


def test_sigkill_during_an_upload_leaves_no_file_after_restart(db_url: str, tmp_path: Path) -> None:
    boundary, size = "faultboundary", 4 * 1024**2  # half of it is more than the 1 MB written at a time
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\npermanent_farmland\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"farmland.gpkg\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    body = head + bytes(size) + f"\r\n--{boundary}--\r\n".encode()
    uploads = uploads_root(tmp_path)
    with server(env_for(db_url, tmp_path)) as proc:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            sock.sendall((f"POST /api/v1/layers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: dev-admin-key\r\n"
                          f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
            deadline = time.monotonic() + 30
            while not any(p.stat().st_size for p in uploads.glob("*/farmland.gpkg")):
                assert time.monotonic() < deadline, "the half-sent body never reached the data dir"
                time.sleep(0.05)
            proc.kill()  # the body is half sent, the file half written
    left = list(uploads.glob("*/farmland.gpkg"))
    assert left and 0 < left[0].stat().st_size < size, "the kill leaves the partial file"
    with server(env_for(db_url, tmp_path)) as proc:
        assert not list(uploads.iterdir()), "the start-up sweep removed it"
        assert httpx.get(f"{proc.base}/api/v1/layers", headers=ADMIN, timeout=30).json() == []
    assert rows(db_url, "SELECT count(*) FROM jobs")[0][0] == 0


def stored_layers(db_url: str, data_dir: Path) -> None:
    """The city's plan layers stored, nothing built; set up in process."""
    app = create_app(settings_for(db_url, data_dir, dev_mode=True, worker_in_process=False))
    with TestClient(app) as client:
        api = Api(app, client, {"admin": "dev-admin-key"})
        for kind in LAYERS:
            path = write_layer(data_dir, kind)
            with path.open("rb") as fh:
                r = api.post("admin", "/api/v1/layers", data={"kind": kind, "name": kind},
                             files={"file": (path.name, fh, "application/geo+json")})
            assert r.status_code == 201, r.text
    app.state.services.close()


def test_sigkill_after_a_build_job_saved_its_draft_leaves_one_draft(db_url: str, tmp_path: Path) -> None:
    stored_layers(db_url, tmp_path)
    marker = tmp_path / "paused"
    with server(env_for(db_url, tmp_path, FAULT_PAUSE="build_saved", FAULT_MARKER=str(marker))) as proc:
        r = httpx.post(f"{proc.base}/api/v1/blueprints", headers={**ADMIN, "Prefer": "respond-async"},
                       json={}, timeout=60)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        wait_for(marker, proc)  # the draft is committed; the job has not ended
        proc.kill()
    drafts = rows(db_url, "SELECT version, status FROM blueprints")
    assert [d.status for d in drafts] == ["draft"], drafts

    with server(env_for(db_url, tmp_path)) as proc, httpx.Client(base_url=proc.base, timeout=60) as http:
        found = jobs_settle(http, db_url)
        job = http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json()
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert_ended_with_reasons(found)
    after = rows(db_url, "SELECT version, status FROM blueprints")
    assert after == drafts, "the retaken job ends with the draft it saved, not a second one"
    assert job["result_id"] == drafts[0].version
    audited = rows(db_url, "SELECT count(*) FROM audit_log WHERE action = 'blueprint.build'")[0][0]
    assert audited == 1, "the draft's audit entry committed with it, once"
    assert_consistent(db_url)
