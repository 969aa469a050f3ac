"""The event feed and webhooks for linked systems (the approval system and others).

Events are written in the transaction of the change (a refused change leaves none), paged by cursor,
long-polled, append-only in the database. Webhooks deliver each event as signed JSON to a receiver on
127.0.0.1, retry after a 5xx, and — after a worker process is SIGKILLed mid-delivery — another worker
delivers again with the same event id, which the receiver de-duplicates (at-least-once).
On SpatiaLite and PostGIS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from approval.audit import write
from approval.jobs import JobStore
from approval.store import EventLog
from approval.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from approval.worker import Worker
from tests.api.conftest import (
    PASS_PARCEL,
    Api,
    collection,
    make_keys,
    national_code,
    publish_city,
    settings_for,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Receiver:
    """A linked system's webhook endpoint: checks signatures, de-duplicates on the event id."""

    secret: str = ""
    statuses: list[int] = field(default_factory=list)  # answers to give next (then 200)
    hang: threading.Event | None = None  # set: hold the next request until released
    received: list[dict[str, Any]] = field(default_factory=list)
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    got_request: threading.Event = field(default_factory=threading.Event)

    def handle(self, headers: Any, body: bytes) -> int:
        ok = verify(self.secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        event = json.loads(body)
        self.received.append({"event_id": headers[EVENT_ID_HEADER], "signed": ok, "event": event})
        if ok and event["event_id"] not in self.processed:
            self.processed[event["event_id"]] = event
        self.got_request.set()
        if self.hang is not None:
            release, self.hang = self.hang, None
            release.wait(60)
        return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.handle(self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/blueprint"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def linked(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A published city; no worker or sweeper runs unless a test runs one."""
    tmp = tmp_path_factory.mktemp("events")
    app = create_app(settings_for(module_db_url, tmp, worker_in_process=False, webhook_timeout_seconds=2))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        publish_city(api, tmp)
        deliver_all(api)  # v1's re-screening job (nothing in flight) out of the way
        yield api
    app.state.services.close()


def new_project(api: Api) -> str:
    code = national_code()
    r = api.post(
        "planner",
        "/api/v1/projects",
        json={
            "code": code,
            "name": "物流园",
            "project_type": "industrial",
            "applicant": "某公司",
            "district": "义安区",
            "parcels": collection(PASS_PARCEL),
        },
    )
    assert r.status_code == 201, r.text
    return code


def feed(api: Api, **params: Any) -> dict[str, Any]:
    r = api.get("approval_system", "/api/v1/events", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def deliver_all(api: Api) -> None:
    services = api.services
    worker = Worker(services.jobs, services.job_handlers(), name="deliverer")
    while services.outbox.sweep() or worker.run_once():
        pass


# ------------------------------------------------------------------------------------------- feed


def test_the_feed_pages_by_cursor_without_gaps_or_repeats(linked: Api) -> None:
    start = feed(linked, limit=1000)["next"]
    codes = [new_project(linked) for _ in range(3)]
    for code in codes:
        assert linked.post("planner", f"/api/v1/projects/{code}/checks").status_code == 201
    whole = feed(linked, after=start, limit=1000)["items"]
    paged, cursor = [], start
    while True:
        page = feed(linked, after=cursor, limit=2)
        if not page["items"]:
            break
        paged += page["items"]
        cursor = page["next"]
    assert [e["seq"] for e in paged] == [e["seq"] for e in whole]
    assert len({e["event_id"] for e in paged}) == len(paged)
    types = [(e["type"], e["subject"]["id"]) for e in whole]
    for code in codes:
        assert [t for t, c in types if c == code] == ["project.created", "check.linked", "project.status"]
    linked_event = next(e for e in whole if e["type"] == "check.linked")
    assert (
        linked_event["payload"]["verdict"] == "pass" and linked_event["payload"]["blueprint_version"] == "v1"
    )
    only = feed(linked, after=start, type="check.linked", limit=1000)["items"]
    assert {e["type"] for e in only} == {"check.linked"} and len(only) == 3


def test_a_refused_change_leaves_no_event(linked: Api) -> None:
    code = new_project(linked)
    before = feed(linked, limit=1000)["next"]
    r = linked.post("reviewer", f"/api/v1/projects/{code}/status", json={"status": "cleared"})
    assert r.status_code == 409
    assert feed(linked, after=before)["items"] == []


def test_long_polling_returns_when_an_event_arrives(linked: Api) -> None:
    cursor = feed(linked, limit=1000)["next"]
    started = time.monotonic()
    assert feed(linked, after=cursor, wait=1)["items"] == []
    assert time.monotonic() - started >= 0.9

    def later() -> None:
        time.sleep(0.5)
        with write(linked.services.engine) as conn:
            EventLog.append(conn, "test.ping", "test", "1", {"n": 1})

    threading.Thread(target=later).start()
    started = time.monotonic()
    items = feed(linked, after=cursor, wait=10)["items"]
    assert [e["type"] for e in items] == ["test.ping"] and time.monotonic() - started < 5


def test_events_are_append_only_in_the_database(linked: Api) -> None:
    for statement in ("UPDATE events SET type = 'x'", "DELETE FROM events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with linked.services.engine.begin() as conn:
                conn.execute(sa.text(statement))


# --------------------------------------------------------------------------------------- webhooks


def register(api: Api, url: str) -> dict[str, Any]:
    r = api.post("admin", "/api/v1/webhooks", json={"system": "工程建设项目审批管理系统", "url": url})
    assert r.status_code == 201, r.text
    return dict(r.json())


def disable(api: Api, webhook_id: str) -> None:
    r = api.client.delete(f"/api/v1/webhooks/{webhook_id}", headers=api.h("admin"))
    assert r.status_code == 204, r.text


def test_webhooks_receive_signed_events_and_are_retried_after_a_5xx(
    linked: Api, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    hook = register(linked, url)
    state.secret = hook["secret"]
    try:
        code = new_project(linked)
        deliver_all(linked)
        assert [r["event"]["type"] for r in state.received] == ["project.created"]
        assert all(r["signed"] for r in state.received)
        assert state.received[0]["event"]["subject"]["id"] == code
        expected = feed(linked, type="project.created", limit=1000)["items"][-1]
        assert (
            state.received[0]["event_id"] == expected["event_id"] and state.received[0]["event"] == expected
        )

        state.statuses = [503]
        assert linked.post("planner", f"/api/v1/projects/{code}/checks").status_code == 201
        deliver_all(linked)
        with linked.services.engine.connect() as conn:
            pending = conn.execute(
                sa.text(
                    "SELECT attempts, last_status FROM webhook_deliveries "
                    "WHERE webhook_id = :w AND status = 'pending'"
                ),
                {"w": hook["webhook_id"]},
            ).all()
        assert [tuple(p) for p in pending] == [
            (1, 503)
        ]  # the first event after the 503 waits for its backoff
        with write(linked.services.engine) as conn:  # let the backoff pass
            conn.execute(
                sa.text("UPDATE webhook_deliveries SET next_attempt_at = :t WHERE webhook_id = :w"),
                {"t": "2000-01-01 00:00:00", "w": hook["webhook_id"]},
            )
        deliver_all(linked)
        ids = [r["event_id"] for r in state.received]
        assert len(ids) == 4 and len(set(ids)) == 3  # one event came twice: before and after the 503
        assert [e["type"] for e in state.processed.values()] == [
            "project.created",
            "check.linked",
            "project.status",
        ]
        listed = next(
            w for w in linked.get("admin", "/api/v1/webhooks").json() if w["webhook_id"] == hook["webhook_id"]
        )
        assert listed["deliveries"] == {"delivered": 3} and "secret" not in listed
    finally:
        disable(linked, hook["webhook_id"])
    new_project(linked)
    deliver_all(linked)
    assert len(state.received) == 4  # a disabled webhook receives nothing more


def test_a_target_that_times_out_is_a_failed_attempt_not_a_stuck_request(
    linked: Api, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    hook = register(linked, url)
    state.secret = hook["secret"]
    state.hang = release = threading.Event()
    try:
        started = time.monotonic()
        new_project(linked)  # the request itself never waits for a webhook
        assert time.monotonic() - started < 2
        deliver_all(linked)  # one attempt, cut off by the 2-second timeout
        with linked.services.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT status, attempts, last_error FROM webhook_deliveries WHERE webhook_id = :w"),
                {"w": hook["webhook_id"]},
            ).one()
        assert row[0] == "pending" and row[1] == 1 and "timed out" in row[2]
    finally:
        release.set()
        disable(linked, hook["webhook_id"])


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x", "http://user:pw@127.0.0.1/x", "javascript:alert(1)", "http:///nohost"]
)
def test_webhook_urls_are_validated(linked: Api, url: str) -> None:
    r = linked.post("admin", "/api/v1/webhooks", json={"system": "x", "url": url})
    assert r.status_code == 422 and r.json()["code"] in ("invalid_webhook_url", "invalid_request"), r.text


def test_only_admins_manage_webhooks(linked: Api) -> None:
    for role in ("planner", "approval_system", "reviewer"):
        r = linked.post(role, "/api/v1/webhooks", json={"system": "x", "url": "http://127.0.0.1:9/x"})
        assert r.status_code == 403


WORKER_SCRIPT = """
from approval.worker import Worker
from runtime.services import Services
from runtime.settings import Settings

services = Services.open(Settings(_env_file=None))
Worker(services.jobs, services.job_handlers(), name="doomed", poll_seconds=0.1).run()
"""


def test_a_delivery_cut_by_sigkill_is_delivered_again_and_deduplicated(
    linked: Api, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    services = linked.services
    hook = register(linked, url)
    state.secret = hook["secret"]
    state.hang = release = threading.Event()  # the receiver holds the first delivery open
    code = new_project(linked)
    assert services.outbox.sweep() == 1
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BLUEPRINT_DATABASE_URL": services.settings.database_url,
        "BLUEPRINT_DATA_DIR": str(services.settings.data_dir),
        "BLUEPRINT_JOB_LEASE_SECONDS": "1",
        "BLUEPRINT_WEBHOOK_TIMEOUT_SECONDS": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert state.got_request.wait(60), proc.stderr.read().decode() if proc.stderr else "no delivery"
        proc.send_signal(signal.SIGKILL)  # mid-delivery: the receiver has the event, no answer was read
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        release.set()
    time.sleep(1.2)  # the dead worker's lease runs out
    store = JobStore(services.engine, services.settings.data_dir, lease_seconds=1)
    assert Worker(store, services.job_handlers(), name="rescuer").run_once()
    try:
        ids = [r["event_id"] for r in state.received]
        assert len(ids) == 2 and len(set(ids)) == 1  # delivered twice, at least once …
        assert list(state.processed) == ids[:1]  # … and processed once by the receiver
        assert all(r["signed"] for r in state.received)
        assert state.received[0]["event"]["subject"]["id"] == code
        with services.engine.connect() as conn:
            status, seq = conn.execute(
                sa.text("SELECT status, event_seq FROM webhook_deliveries WHERE webhook_id = :w"),
                {"w": hook["webhook_id"]},
            ).one()
            job_id = conn.execute(
                sa.text("SELECT job_id FROM jobs WHERE idempotency_key = :k"),
                {"k": f"webhook:{hook['webhook_id']}:{seq}:0"},
            ).scalar_one()
        assert status == "delivered"
        job = linked.get("admin", f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["attempts"] == 2
    finally:
        disable(linked, hook["webhook_id"])


def test_a_delivery_whose_job_failed_is_retried(linked: Api, receiver: tuple[Receiver, str]) -> None:
    """A job that failed as a job (its worker gave up) leaves no outbox row waiting forever."""
    state, url = receiver
    services = linked.services
    hook = register(linked, url)
    state.secret = hook["secret"]
    try:
        new_project(linked)
        assert services.outbox.sweep() == 1
        with write(services.engine) as conn:
            conn.execute(
                sa.text(
                    "UPDATE jobs SET status = 'failed' WHERE job_id = "
                    "(SELECT job_id FROM webhook_deliveries WHERE webhook_id = :w)"
                ),
                {"w": hook["webhook_id"]},
            )
        assert services.outbox.sweep() == 0  # released, waiting for its backoff
        with write(services.engine) as conn:
            row = conn.execute(
                sa.text("SELECT status, attempts, job_id FROM webhook_deliveries WHERE webhook_id = :w"),
                {"w": hook["webhook_id"]},
            ).one()
            assert tuple(row) == ("pending", 1, None)
            conn.execute(
                sa.text("UPDATE webhook_deliveries SET next_attempt_at = :t WHERE webhook_id = :w"),
                {"t": "2000-01-01 00:00:00", "w": hook["webhook_id"]},
            )
        deliver_all(linked)
        assert [r["event"]["type"] for r in state.received] == ["project.created"]
    finally:
        disable(linked, hook["webhook_id"])
