"""Durable jobs: input stored before the 202, leases, a SIGKILLed worker's job finished by another, restarts.

The kill test runs a real worker process (``python -m cli.main worker``-like, see WORKER_SCRIPT) on the
same database, SIGKILLs it while it holds a check job, and lets a second worker finish that job: one
stored check, attempts == 2, nothing lost. On SpatiaLite and PostGIS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from approval.audit import AuditLog, Principal, write
from approval.jobs import MAX_ATTEMPTS, JobStore
from approval.worker import Worker
from tests.api.conftest import (
    PASS_PARCEL,
    REDLINE_PARCEL,
    Api,
    collection,
    make_keys,
    publish_city,
    rect,
    settings_for,
)

ROOT = Path(__file__).resolve().parents[2]
PLANNER = Principal("planner", "planner")
THREE = collection(PASS_PARCEL, REDLINE_PARCEL, rect(1200, 0, 1300, 100))


@pytest.fixture(scope="module")
def quiet(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A published city whose app runs no worker of its own: jobs wait until a test runs one."""
    tmp = tmp_path_factory.mktemp("jobs")
    app = create_app(settings_for(module_db_url, tmp, worker_in_process=False, job_parcel_threshold=2))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        publish_city(api, tmp)
        yield api
    app.state.services.close()


def queue_check(api: Api, key: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    r = api.post("planner", "/api/v1/checks", json={"project_type": "industrial", "parcels": THREE},
                 headers=headers)
    assert r.status_code == 202, r.text
    return dict(r.json())


def test_a_queued_check_keeps_its_input_on_disk_until_a_worker_runs_it(quiet: Api) -> None:
    services = quiet.app.state.services
    job = queue_check(quiet)
    assert job["status"] == "queued"
    folder = services.jobs.input_dir(job["job_id"])
    assert (folder / "parcels.parquet").is_file(), "the input is stored before the 202"
    worker = Worker(services.jobs, services.job_handlers(), name="w-test")
    assert worker.run_once()
    while worker.run_once():  # the publish's own jobs (tiles) may come first
        pass
    done = quiet.get("approval_system", f"/api/v1/jobs/{job['job_id']}").json()
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["attempts"] == 1
    result = quiet.get("approval_system", done["result"]).json()
    assert result["verdict"] == "conflict" and len(result["parcels"]) == 3
    assert not folder.exists(), "input removed once the result is stored"


def test_leases_expire_and_a_late_worker_cannot_finish(quiet: Api) -> None:
    services = quiet.app.state.services
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=3)  # ample under load
    job, _ = store.create("noop", by=PLANNER, payload={"n": 1})
    first = store.claim("w1")
    assert first is not None and first["job_id"] == job["job_id"]
    assert store.claim("w2") is None, "a held lease is not taken"
    time.sleep(3.3)
    again = store.claim("w2")
    assert again is not None and again["attempts"] == 2
    assert not store.heartbeat(job["job_id"], "w1") and not store.finish(job["job_id"], "w1", "succeeded")
    assert store.finish(job["job_id"], "w2", "succeeded", result_id="r")
    assert store.get(job["job_id"])["status"] == "succeeded"


def test_a_job_whose_workers_keep_dying_fails_with_a_reason(quiet: Api) -> None:
    services = quiet.app.state.services
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=0.05)
    job, _ = store.create("noop", by=PLANNER)
    for n in range(MAX_ATTEMPTS):
        claimed = store.claim(f"dies-{n}")
        assert claimed is not None and claimed["job_id"] == job["job_id"]
        time.sleep(0.1)
    assert store.claim("last") is None
    failed = store.get(job["job_id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "job_attempts_exhausted"


def test_an_unknown_kind_waits_and_a_failing_handler_ends_failed(quiet: Api) -> None:
    services = quiet.app.state.services
    store = services.jobs
    odd, _ = store.create("no-such-kind", by=PLANNER)
    broken, _ = store.create("boom", by=PLANNER)

    def boom(job: dict, folder: Path, progress) -> str:
        raise RuntimeError("disk on fire")

    worker = Worker(store, {"boom": boom}, name="w-fail")
    while worker.run_once():
        pass
    waiting = store.get(odd["job_id"])["status"]
    assert waiting == "queued", "a kind this worker cannot run waits for a worker that can"
    body = store.get(broken["job_id"])
    assert body["status"] == "failed" and body["error"]["code"] == "internal_error"
    assert "disk on fire" not in body["error"]["detail"], "no internals in the API"


def claim_elsewhere(store: JobStore, worker: str, kinds: set[str]) -> dict | None:
    """Another worker's claim, from a thread of its own (not the job's)."""
    found: list[dict | None] = []
    thread = threading.Thread(target=lambda: found.append(store.claim(worker, kinds)))
    thread.start()
    thread.join(timeout=60)
    return found[0]


def test_a_job_holding_a_long_write_keeps_its_lease(quiet: Api) -> None:
    """On SQLite the heartbeat cannot write while the job's own write transaction (an import, a draft's
    pieces) holds the only write lock; when that transaction commits, the lease must be fresh, or the
    worker waiting for the same lock takes the job over. Holds on PostGIS too (no such lock there)."""
    services = quiet.app.state.services
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=1)
    other = JobStore(services.engine, services.settings.data_dir, lease_seconds=1)
    job, _ = store.create("long-write", by=PLANNER)
    taken: dict[str, dict | None] = {}

    def long_write(job: dict, folder: Path, progress) -> str:
        with write(services.engine) as conn:
            AuditLog.append(conn, PLANNER, "test.long_write", "job", job["job_id"])
            time.sleep(2.5)  # 2.5 leases long
        taken["at_commit"] = claim_elsewhere(other, "w-other", {"long-write"})
        time.sleep(1.5)  # the job goes on after its write: the heartbeat holds the lease again
        taken["later"] = claim_elsewhere(other, "w-other", {"long-write"})
        return "done"

    worker = Worker(store, {"long-write": long_write}, name="w-long")
    assert worker.run_once()
    assert taken == {"at_commit": None, "later": None}, "no other worker took the job over"
    done = store.get(job["job_id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["result_id"] == "done", done


def test_a_heartbeat_that_fails_once_keeps_beating(quiet: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat refused once (SQLite busy past its timeout) must not stop the beating for good."""
    services = quiet.app.state.services
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=1.5)
    other = JobStore(services.engine, services.settings.data_dir, lease_seconds=1.5)
    job, _ = store.create("beats", by=PLANNER)
    real, calls = store.heartbeat, []

    def flaky(*args, **kwargs) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "heartbeat", flaky)
    taken: list[dict | None] = []

    def beats(job: dict, folder: Path, progress) -> str:
        time.sleep(3.5)  # more than two leases, the first heartbeat refused
        taken.append(claim_elsewhere(other, "w-other", {"beats"}))
        return "done"

    assert Worker(store, {"beats": beats}, name="w-beats").run_once()
    assert len(calls) > 2 and taken == [None]
    assert store.get(job["job_id"])["attempts"] == 1


def test_a_restart_takes_up_at_once_the_jobs_its_dead_predecessor_held(quiet: Api) -> None:
    """Red-team 2: a job whose worker process is gone resumes at once after a restart, not after its
    lease; a live worker's job, another host's and this process's running worker's are left alone."""
    services = quiet.app.state.services
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=600)
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid no process has now
    owners = {"dead": f"{host}:{dead.pid}:a1", "this_pid_old": f"{host}:{os.getpid()}:old",
              "live_process": f"{host}:1:b2", "other_host": f"not-{host}:{dead.pid}:c3"}
    made = {}
    for label, owner in owners.items():
        job, _ = store.create("held-elsewhere", by=PLANNER)
        assert store.claim(owner, {"held-elsewhere"})["job_id"] == job["job_id"]
        made[label] = job["job_id"]
    assert store.claim("w-next", {"held-elsewhere"}) is None, "every lease runs for ten minutes"
    assert sorted(store.release_dead_local()) == sorted([made["dead"], made["this_pid_old"]])
    taken = {store.claim("w-next", {"held-elsewhere"})["job_id"] for _ in range(2)}
    assert taken == {made["dead"], made["this_pid_old"]} and store.claim("w-next", {"held-elsewhere"}) is None
    for label in ("live_process", "other_host"):
        store.finish(made[label], owners[label], "failed", error_code="test", error_detail="cleaned up")
    for job_id in taken:
        store.finish(job_id, "w-next", "succeeded", result_id="r")


WORKER_SCRIPT = """
import sys, time
from pathlib import Path
from approval.worker import Worker
from runtime.services import Services
from runtime.settings import Settings

services = Services.open(Settings(_env_file=None))
real = services.job_handlers()["check"]

def slow(job, folder, progress):
    Path(sys.argv[1]).write_text(job["job_id"])  # holding the job now
    time.sleep(120)  # killed long before this ends
    return real(job, folder, progress)

Worker(services.jobs, {"check": slow}, name="doomed", poll_seconds=0.1).run()
"""


def test_a_sigkilled_workers_job_is_finished_by_another_exactly_once(quiet: Api, tmp_path: Path) -> None:
    services = quiet.app.state.services
    job = queue_check(quiet, key="kill-test")
    marker = tmp_path / "holding"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLUEPRINT_DATABASE_URL": services.settings.database_url,
           "BLUEPRINT_DATA_DIR": str(services.settings.data_dir), "BLUEPRINT_JOB_LEASE_SECONDS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(marker)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "worker died"
            assert time.monotonic() < deadline, "the worker process never took the job"
            time.sleep(0.1)
        assert marker.read_text() == job["job_id"]
        assert quiet.get("planner", f"/api/v1/jobs/{job['job_id']}").json()["status"] == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=1)
    time.sleep(1.2)  # the dead worker's lease runs out
    assert Worker(store, {"check": services.job_handlers()["check"]}, name="rescuer").run_once()
    done = quiet.get("planner", f"/api/v1/jobs/{job['job_id']}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    # a retry with the same key gets the same stored result; there is exactly one check for the job
    again = quiet.post("planner", "/api/v1/checks", json={"project_type": "industrial", "parcels": THREE},
                       headers={"Idempotency-Key": "kill-test"})
    assert again.status_code == 200 and again.json()["check_id"] == done["result_id"]
    with services.engine.connect() as conn:
        n = conn.execute(sa.text(
            "SELECT count(*) FROM checks WHERE idempotency_key LIKE '%/kill-test'")).scalar()
    assert n == 1


def test_a_job_queued_before_a_restart_is_run_by_the_next_app(
        quiet: Api, module_db_url: str, tmp_path: Path) -> None:
    """No worker in the first app (it stops with the job queued); the second app's worker runs it."""
    first = create_app(settings_for(module_db_url, tmp_path, worker_in_process=False, job_parcel_threshold=2))
    with TestClient(first) as client:
        api = Api(first, client, make_keys(first.state.services))
        job = queue_check(api)
        keys = api.keys
    first.state.services.close()
    second = create_app(settings_for(module_db_url, tmp_path, job_parcel_threshold=2))
    with TestClient(second) as client:
        deadline = time.monotonic() + 60
        while True:
            body = client.get(f"/api/v1/jobs/{job['job_id']}", headers={"X-API-Key": keys["planner"]}).json()
            if body["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    second.state.services.close()
    assert body["status"] == "succeeded", body


def test_a_failed_jobs_idempotency_key_can_be_retried(quiet: Api) -> None:
    """Defect 2 of issue #16: the key of a failed job used to answer with that failed job forever."""
    services = quiet.app.state.services
    job = queue_check(quiet, key="fails-once")

    def boom(job: dict, folder: Path, progress) -> str:
        raise RuntimeError("worker lost its disk")

    worker = Worker(services.jobs, {"check": boom}, name="w-boom")
    while worker.run_once():
        pass
    assert services.jobs.get(job["job_id"])["status"] == "failed"
    retry = queue_check(quiet, key="fails-once")
    assert retry["job_id"] != job["job_id"] and retry["status"] == "queued"
    assert queue_check(quiet, key="fails-once")["job_id"] == retry["job_id"], "the new job owns the key now"
    assert services.jobs.get(job["job_id"])["status"] == "failed", "the failure itself is kept"
    assert Worker(services.jobs, services.job_handlers(), name="w-ok").run_once()
    assert services.jobs.get(retry["job_id"])["status"] == "succeeded"
