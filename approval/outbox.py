"""approval.outbox: webhooks for linked systems — registration, the outbox sweep and one delivery per job."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from approval.audit import SYSTEM, AuditLog, Principal, write
from approval.jobs import JobStore
from approval.store import EventLog, WebhookStore
from approval.webhooks import deliver, validate_url

log = logging.getLogger("approval.outbox")

KIND = "webhook"
# outbox rows whose delivery job failed as a job (not a failed POST, which the job records itself)
STUCK = (
    "SELECT d.webhook_id, d.event_seq, d.attempts FROM webhook_deliveries d "
    "JOIN jobs j ON j.job_id = d.job_id WHERE d.status = 'pending' AND j.status = 'failed'"
)


class Outbox:
    """Events → outbox rows (one per active webhook × event) → a ``webhook`` job per due attempt.

    The sweep is idempotent (outbox rows have a primary key, jobs an idempotency key naming the attempt),
    so any number of sweepers may run; a delivery interrupted by a kill is retried by the job's next
    lease holder and the receiver de-duplicates on ``X-Blueprint-Event-Id`` (at-least-once).
    """

    def __init__(self, engine: Engine, *, timeout: float = 5.0) -> None:
        self.engine = engine
        self.store = WebhookStore(engine)
        self.events = EventLog(engine)
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, system: str, url: str, *, by: Principal) -> dict[str, Any]:
        """A new target receiving every event from now on; its signing secret is in this answer only."""
        url = validate_url(url)
        with write(self.engine) as conn:
            hook = self.store.create(conn, system, url, by=by.name, from_event=self.events.last_id())
            AuditLog.append(
                conn,
                by,
                "webhook.create",
                "webhook",
                hook["webhook_id"],
                after={"system": system, "url": url},
            )
        return hook

    def disable(self, webhook_id: str, *, by: Principal) -> None:
        with write(self.engine) as conn:
            WebhookStore.disable(conn, webhook_id)
            AuditLog.append(conn, by, "webhook.disable", "webhook", webhook_id)

    def sweep(self) -> int:
        """Fan new events out to the outbox and queue a job for every due attempt; returns jobs queued.

        Read first, so an idle service does not take the write lock every second."""
        with self.engine.connect() as conn:
            if not WebhookStore.has_work(conn) and not conn.execute(sa.text(STUCK)).first():
                return 0
        with write(self.engine) as conn:
            self._release_failed_jobs(conn)
            self.store.fan_out(conn)
            due = WebhookStore.due(conn)
            for webhook_id, seq, attempts in due:
                job_id = JobStore.enqueue(
                    conn,
                    KIND,
                    by=SYSTEM,
                    idempotency_key=f"{KIND}:{webhook_id}:{seq}:{attempts}",
                    payload={"webhook_id": webhook_id, "event_seq": seq},
                )
                WebhookStore.mark_queued(conn, webhook_id, seq, job_id)
        return len(due)

    @staticmethod
    def _release_failed_jobs(conn: Connection) -> None:
        """A delivery whose job failed outright (not a failed POST: the job itself) counts as a failed
        attempt, so the outbox row is retried after its backoff instead of waiting forever."""
        stuck = conn.execute(sa.text(STUCK)).all()
        for webhook_id, seq, attempts in stuck:
            WebhookStore.record_attempt(
                conn,
                str(webhook_id),
                int(seq),
                attempts=int(attempts) + 1,
                ok=False,
                status=None,
                error="the delivery job failed",
            )

    def run(self, job: dict[str, Any], _folder: Path, _progress: Callable[[float], None]) -> str:
        """The job: one attempt to deliver one event to one target, recorded in the outbox."""
        payload = job["payload"]
        webhook_id, seq = str(payload["webhook_id"]), int(payload["event_seq"])
        hook, row, event = self.store.target(webhook_id, seq)
        if row["status"] != "pending" or hook["disabled_at"] is not None:
            return str(event["event_id"])  # delivered (or given up, or the target was removed) already
        body = json.dumps(event, ensure_ascii=False, sort_keys=True).encode("utf-8")
        attempt = deliver(hook["url"], hook["secret"], event["event_id"], body, timeout=self.timeout)
        with write(self.engine) as conn:
            state = WebhookStore.record_attempt(
                conn,
                webhook_id,
                seq,
                attempts=int(row["attempts"]) + 1,
                ok=attempt.ok,
                status=attempt.status,
                error=attempt.error,
            )
        if not attempt.ok:
            log.warning("webhook %s, event %s: %s (%s)", webhook_id, event["event_id"], attempt.error, state)
        return str(event["event_id"])

    # ---- the sweeper thread (beside each worker)

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sweep()
                except Exception:  # a database hiccup must not end the sweeping
                    log.exception("outbox sweep failed")

        self._thread = threading.Thread(target=loop, name="outbox-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
