"""approval.jobs: durable jobs — input stored before the 202, taken by any worker under a lease, resumed.

Why not a queue library: huey's SQL storage deletes a message when a worker takes it (no acknowledgement,
no lease), so a SIGKILLed worker loses the task; procrastinate runs on PostgreSQL only, and the embedded
default is SQLite. What makes a job durable here is the lease on the project's own ``jobs`` row: a claim is
one compare-and-set UPDATE (the same statement on SQLite and PostgreSQL), a heartbeat extends the lease,
and a job whose lease ran out is claimed again by the next worker. Handlers are idempotent (a check job's
``check_id`` is derived from the job id), so a job finished twice in effect is finished once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from approval.audit import SYSTEM, AuditLog, Principal, _iso, now, write
from approval.errors import JobNotFoundError
from layers.store import WRITE_OPTION

log = logging.getLogger("approval.jobs")

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32)),
    sa.Column("status", sa.String(16)),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("input_hash", sa.String(128)),
    sa.Column("parcel_count", sa.Integer),
    sa.Column("result_id", sa.String(64)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_detail", sa.Text),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    # 0004: durable jobs
    sa.Column("payload", sa.Text),
    sa.Column("input_dir", sa.String(500)),
    sa.Column("attempts", sa.Integer),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("progress", sa.Float),
    sa.Column("progress_detail", sa.Text),  # 0009: JSON, e.g. {"features_read": .., "chunk": ..}
)

MAX_ATTEMPTS = 3  # a job whose worker died this many times is failed, not retried forever
FINAL = ("succeeded", "failed")
PROGRESS_FILE = "progress.json"

# progress(fraction, detail=None): detail is a small JSON object shown with the job, e.g.
# {"stage": "importing", "features_read": 200000, "features_total": 1000000, "chunk": 2, "chunks": 5}
Progress = Callable[..., None]
# a handler gets the job row, its input directory and a progress callback; returns the result id
Handler = Callable[[dict[str, Any], Path, Progress], str]


_LIVE_WORKERS: set[str] = set()  # names of the workers running in this process


def _gone(owner: str) -> bool:
    """Whether the worker ``owner`` (``host:pid:tag``) was a process of this host that no longer runs.
    This process's own pid counts as gone unless one of its live workers has that name (a restarted
    server in a container often gets the pid its killed predecessor had)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE_WORKERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


# The job this thread runs (its store, id and worker), for the SQLite lease renewal below.
_running = threading.local()


def _renew_lease_at_commit(conn: Connection) -> None:
    """SQLite only: renew the running job's lease inside each write transaction its own thread commits.

    SQLite has one writer. While a job's long write (a layer import, a draft's pieces) holds the lock,
    the heartbeat thread cannot write, so the lease it last wrote runs out; at that commit, another
    worker's claim waiting for the same lock would find it expired and take the job over. Renewed in
    the same transaction, the lease is fresh the moment the lock is released (nobody else could write
    before). Written through the DB-API connection: the transaction is being committed."""
    held = getattr(_running, "job", None)
    if held is None or not conn.get_execution_options().get(WRITE_OPTION):
        return
    store, job_id, worker = held
    if conn.engine is not store.engine:
        return
    stamp = jobs.c.lease_until.type.bind_processor(conn.dialect)
    until = now() + store.lease
    conn.connection.driver_connection.execute(  # type: ignore[union-attr]
        "UPDATE jobs SET lease_until = ?, updated_at = ? "
        "WHERE job_id = ? AND lease_owner = ? AND status = 'running'",
        (stamp(until) if stamp else until, stamp(now()) if stamp else now(), job_id, worker),
    )


class JobStore:
    """The jobs table as a queue: create (input first), claim, heartbeat, finish, read."""

    def __init__(self, engine: Engine, data_dir: Path, *, lease_seconds: float = 30.0) -> None:
        self.engine = engine
        self.root = Path(data_dir) / "jobs"
        self.lease = timedelta(seconds=lease_seconds)
        if engine.dialect.name == "sqlite" and not event.contains(engine, "commit", _renew_lease_at_commit):
            event.listen(engine, "commit", _renew_lease_at_commit)

    def input_dir(self, job_id: str) -> Path:
        return self.root / job_id

    # ---- producer side

    def create(
        self,
        kind: str,
        *,
        by: Principal,
        parcel_count: int = 0,
        input_hash: str = "",
        idempotency_key: str | None = None,
        payload: Mapping[str, Any] | None = None,
        write_input: Callable[[Path], None] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """A queued job with its input on disk, or the existing job for ``idempotency_key`` (and whether new).

        The input is written (to a temporary folder, then renamed) before the row is committed, so a job
        that any worker can see always has its input.
        """
        if idempotency_key is not None:
            existing = self.by_idempotency_key(idempotency_key)
            if existing is not None and existing["status"] == "failed":
                self._release_key(existing["job_id"])  # a failed job's key may be retried
            elif existing is not None:
                return existing, False
        job_id = f"J{uuid.uuid4().hex}"
        folder = self._write_input(job_id, write_input) if write_input else None
        stamp = now()
        try:
            with write(self.engine) as conn:
                conn.execute(
                    jobs.insert().values(
                        job_id=job_id,
                        kind=kind,
                        status="queued",
                        idempotency_key=idempotency_key,
                        input_hash=input_hash,
                        parcel_count=parcel_count,
                        created_by=by.name,
                        created_at=stamp,
                        updated_at=stamp,
                        payload=json.dumps(dict(payload or {})),
                        input_dir=str(folder) if folder else None,
                        attempts=0,
                    )
                )
                AuditLog.append(
                    conn, by, "job.create", "job", job_id, after={"status": "queued", "kind": kind}
                )
        except sa.exc.IntegrityError:  # the same key raced us
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
            existing = self.by_idempotency_key(idempotency_key or "")
            if existing is None:
                raise
            return existing, False
        return self.get(job_id), True

    @staticmethod
    def enqueue(
        conn: Connection, kind: str, *, by: Principal, idempotency_key: str, payload: Mapping[str, Any]
    ) -> str:
        """Queue a job without input files inside the caller's transaction (so it commits with the change
        that calls for it); a job with the same key already there is kept and its id returned."""
        existing = conn.execute(
            sa.select(jobs.c.job_id).where(jobs.c.idempotency_key == idempotency_key)
        ).scalar()
        if existing is not None:
            return str(existing)
        job_id, stamp = f"J{uuid.uuid4().hex}", now()
        conn.execute(
            jobs.insert().values(
                job_id=job_id, kind=kind, status="queued", idempotency_key=idempotency_key, input_hash="",
                parcel_count=0, created_by=by.name, created_at=stamp, updated_at=stamp,
                payload=json.dumps(dict(payload)), attempts=0,
            )
        )
        AuditLog.append(conn, by, "job.create", "job", job_id, after={"status": "queued", "kind": kind})
        return job_id

    def _write_input(self, job_id: str, write_input: Callable[[Path], None]) -> Path:
        final = self.input_dir(job_id)
        partial = final.with_name(final.name + ".partial")
        partial.mkdir(parents=True, exist_ok=False)
        try:
            write_input(partial)
            partial.rename(final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return final

    def _release_key(self, job_id: str) -> None:
        """Free the Idempotency-Key of a failed job (the job keeps its status and reason), so a retry
        with the same key makes a new job instead of answering with the failure forever."""
        with write(self.engine) as conn:
            conn.execute(jobs.update().where(jobs.c.job_id == job_id, jobs.c.status == "failed")
                         .values(idempotency_key=None, updated_at=now()))

    def by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            job_id = conn.execute(sa.select(jobs.c.job_id).where(jobs.c.idempotency_key == key)).scalar()
        return None if job_id is None else self.get(job_id)

    # ---- worker side

    def claim(self, worker: str, kinds: Collection[str] | None = None) -> dict[str, Any] | None:
        """Take the oldest queued job, or one whose worker's lease ran out; ``None`` when there is none.

        ``kinds``: only jobs this worker can run (a job of another kind waits for a worker that can).
        """
        stamp = now()
        claimable = sa.or_(
            jobs.c.status == "queued", sa.and_(jobs.c.status == "running", jobs.c.lease_until < stamp)
        )
        if kinds is not None:
            claimable = sa.and_(claimable, jobs.c.kind.in_(sorted(kinds)))
        with self.engine.connect() as conn:
            candidates = conn.execute(
                sa.select(jobs.c.job_id, jobs.c.attempts)
                .where(claimable)
                .order_by(jobs.c.created_at)
                .limit(8)
            ).all()
        for job_id, attempts in candidates:
            if (attempts or 0) >= MAX_ATTEMPTS:
                self._give_up(job_id, attempts or 0)
                continue
            with write(self.engine) as conn:
                taken = conn.execute(
                    jobs.update()
                    .where(jobs.c.job_id == job_id, claimable)
                    .values(
                        status="running",
                        lease_owner=worker,
                        lease_until=stamp + self.lease,
                        attempts=jobs.c.attempts + 1,
                        updated_at=stamp,
                    )
                ).rowcount
                if taken == 1:
                    AuditLog.append(
                        conn,
                        SYSTEM,
                        "job.claim",
                        "job",
                        job_id,
                        after={"status": "running", "worker": worker, "attempt": (attempts or 0) + 1},
                    )
            if taken == 1:
                return self.get(job_id, raw=True)
        return None

    def release_dead_local(self) -> list[str]:
        """End now the leases of running jobs whose worker was a process of this host that is gone (a
        restart): the next claim takes them up at once instead of after the lease runs out."""
        host = socket.gethostname()
        with self.engine.connect() as conn:
            held = conn.execute(sa.select(jobs.c.job_id, jobs.c.lease_owner).where(
                jobs.c.status == "running", jobs.c.lease_owner.like(f"{host}:%"))).all()
        released = []
        for job_id, owner in held:
            if not _gone(str(owner)):
                continue
            with write(self.engine) as conn:
                done = conn.execute(jobs.update().where(
                    jobs.c.job_id == job_id, jobs.c.lease_owner == owner, jobs.c.status == "running")
                    .values(lease_until=now() - timedelta(seconds=1), updated_at=now())).rowcount
            if done:
                released.append(str(job_id))
        if released:
            log.warning("released %d jobs whose worker process is gone: %s", len(released), released)
        return released

    def _give_up(self, job_id: str, attempts: int) -> None:
        with write(self.engine) as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.status.in_(("queued", "running")))
                .values(
                    status="failed",
                    error_code="job_attempts_exhausted",
                    lease_owner=None,
                    error_detail=f"the workers running this job stopped {attempts} times",
                    updated_at=now(),
                )
            )
            AuditLog.append(
                conn,
                SYSTEM,
                "job.status",
                "job",
                job_id,
                after={"status": "failed"},
                detail={"reason": "attempts exhausted"},
            )
        shutil.rmtree(self.input_dir(job_id), ignore_errors=True)

    @staticmethod
    def record_result(conn: Connection, job_id: str, result_id: str) -> None:
        """Note what a running job has made, inside the transaction that made it (a job taken up again
        after its worker died past that commit reads it from ``result_id`` and does not make it twice).
        Run it last in that transaction: on PostgreSQL it locks the job's row (and so its heartbeat)
        until the commit."""
        conn.execute(jobs.update().where(jobs.c.job_id == job_id, jobs.c.status == "running")
                     .values(result_id=result_id))

    def heartbeat(self, job_id: str, worker: str, progress: float | None = None,
                  detail: Mapping[str, Any] | None = None) -> bool:
        """Extend the lease (and record progress); ``False`` when another worker has taken the job over."""
        values: dict[str, Any] = {"lease_until": now() + self.lease, "updated_at": now()}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, float(progress)))
        if detail is not None:
            values["progress_detail"] = json.dumps(dict(detail), ensure_ascii=False)
        with write(self.engine) as conn:
            return bool(
                conn.execute(
                    jobs.update()
                    .where(jobs.c.job_id == job_id, jobs.c.lease_owner == worker, jobs.c.status == "running")
                    .values(**values)
                ).rowcount
            )

    def finish(
        self,
        job_id: str,
        worker: str,
        status: str,
        *,
        result_id: str | None = None,
        error_code: str | None = None,
        error_detail: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """End the job if ``worker`` still holds it (a late worker's answer is dropped, never twice).
        ``detail``: the last progress detail the handler reported, kept with the ended job."""
        extra = {"progress_detail": json.dumps(dict(detail), ensure_ascii=False)} if detail else {}
        with write(self.engine) as conn:
            done = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.lease_owner == worker, jobs.c.status == "running")
                .values(
                    status=status,
                    result_id=result_id,
                    error_code=error_code,
                    error_detail=error_detail,
                    progress=1.0 if status == "succeeded" else None,
                    lease_until=None,
                    updated_at=now(),
                    **extra,
                )
            ).rowcount
            if done:
                AuditLog.append(
                    conn,
                    SYSTEM,
                    "job.status",
                    "job",
                    job_id,
                    before={"status": "running"},
                    after={"status": status, "result_id": result_id, "error_code": error_code},
                )
        if done:  # the job has ended either way: its input (an uploaded file, parcels) goes
            shutil.rmtree(self.input_dir(job_id), ignore_errors=True)
        return bool(done)

    def write_progress(self, job_id: str, fraction: float, detail: Mapping[str, Any] | None) -> None:
        """Progress beside the job's input (read by :meth:`get` while it runs): a file, because on SQLite
        the import's own transaction holds the only write lock until it ends."""
        folder = self.input_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".progress.{os.getpid()}.{threading.get_ident()}"
        body = {"progress": fraction, "detail": dict(detail or {})}
        partial.write_text(json.dumps(body, ensure_ascii=False))
        os.replace(partial, folder / PROGRESS_FILE)

    def _running_progress(self, job_id: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.input_dir(job_id) / PROGRESS_FILE).read_text()))
        except (OSError, ValueError):
            return None

    def sweep_inputs(self, *, orphan_age_s: float = 3600.0) -> list[Path]:
        """Remove input folders no job will read again: of ended jobs, and half-written or orphaned
        ones (no row: the process died between writing the input and committing) older than an hour
        (a younger one may be another live process's job being created). Run at start-up."""
        if not self.root.is_dir():
            return []
        with self.engine.connect() as conn:
            live = {str(j) for (j,) in conn.execute(
                sa.select(jobs.c.job_id).where(jobs.c.status.in_(("queued", "running"))))}
            known = {str(j) for (j,) in conn.execute(sa.select(jobs.c.job_id))}
        removed: list[Path] = []
        cutoff = datetime.now(UTC).timestamp() - orphan_age_s
        for folder in self.root.iterdir():
            try:
                if not folder.is_dir() or folder.is_symlink() or folder.name in live:
                    continue
                if folder.name not in known and folder.stat().st_mtime > cutoff:
                    continue
            except OSError:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        if removed:
            log.warning("removed %d job input folders no job needs", len(removed))
        return removed

    # ---- reads

    def get(self, job_id: str, *, raw: bool = False) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
        if row is None:
            raise JobNotFoundError(f"no job {job_id}")
        body: dict[str, Any] = {
            "job_id": row["job_id"],
            "kind": row["kind"],
            "status": row["status"],
            "progress": row["progress"],
            "progress_detail": json.loads(row["progress_detail"]) if row["progress_detail"] else None,
            "attempts": row["attempts"] or 0,
            "parcel_count": row["parcel_count"],
            "result_id": row["result_id"],
            "input_hash": row["input_hash"],
            "error": {"code": row["error_code"], "detail": row["error_detail"]}
            if row["error_code"]
            else None,
            "created_by": row["created_by"],
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }
        if row["status"] == "running" and (live := self._running_progress(job_id)) is not None:
            body["progress"] = max(0.0, min(1.0, float(live.get("progress") or 0.0)))
            body["progress_detail"] = live.get("detail") or body["progress_detail"]
        if raw:
            body["payload"] = json.loads(row["payload"] or "{}")
            body["input_dir"] = row["input_dir"]
            body["idempotency_key"] = row["idempotency_key"]
            body["lease_until"] = _aware(row["lease_until"])
        return body

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        return {str(status): int(n) for status, n in rows}
