"""approval.worker: the loop that runs durable jobs: claim, hold the lease by heartbeat, run, finish."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from approval.jobs import _LIVE_WORKERS, Handler, JobStore, _running
from layers.errors import OneBlueprintError

log = logging.getLogger("approval.jobs")  # the jobs' one logger name, as before the split


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs jobs from the table: one at a time, a heartbeat thread holding the lease while it runs."""

    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[str, Handler],
        *,
        name: str | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.name = name or worker_name()
        self.poll = poll_seconds
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Claim and run one job; ``False`` when there was nothing to do."""
        job = self.store.claim(self.name, self.handlers.keys())
        if job is None:
            return False
        self._run(job)
        return True

    def _run(self, job: dict[str, Any]) -> None:
        job_id = str(job["job_id"])
        handler = self.handlers.get(str(job["kind"]))
        if handler is None:
            self.store.finish(
                job_id,
                self.name,
                "failed",
                error_code="unknown_job_kind",
                error_detail=f"no worker handles jobs of kind {job['kind']}",
            )
            return
        beating = threading.Event()
        progress: list[Any] = [None, None]  # fraction, detail
        written: list[Any] = [None, None]

        def beat() -> None:
            # progress is written within a second of changing; the lease at least every third of it
            interval = max(0.2, self.store.lease.total_seconds() / 3)
            last = 0.0
            while not beating.wait(min(1.0, interval)):
                clock = time.monotonic()
                if progress != written or clock - last >= interval:
                    snapshot = list(progress)
                    try:
                        self.store.heartbeat(job_id, self.name, snapshot[0], snapshot[1])
                    except Exception:  # e.g. SQLite busy past its timeout: beat again, never stop beating
                        log.warning("job %s: heartbeat not written, trying again", job_id, exc_info=True)
                        continue
                    written[:], last = snapshot, clock

        beater = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
        beater.start()
        _running.job = (self.store, job_id, self.name)
        try:
            folder = Path(job["input_dir"]) if job.get("input_dir") else self.store.input_dir(job_id)
            def report(fraction: float, detail: Mapping[str, Any] | None = None) -> None:
                progress[:] = [fraction, dict(detail) if detail is not None else progress[1]]
                try:
                    self.store.write_progress(job_id, fraction, progress[1])
                except OSError:  # progress is a courtesy; a full disk must not fail the job
                    log.warning("job %s: progress not written", job_id)

            result_id = handler(job, folder, report)
        except OneBlueprintError as exc:
            self.store.finish(job_id, self.name, "failed", error_code=exc.code, error_detail=exc.user_message,
                              detail=progress[1])
        except Exception:  # a job must end in a state, whatever happened
            log.exception("job %s failed", job_id)
            self.store.finish(
                job_id,
                self.name,
                "failed",
                error_code="internal_error",
                error_detail=f"internal error while running the job (see the log, job {job_id})",
            )
        else:
            self.store.finish(job_id, self.name, "succeeded", result_id=result_id, detail=progress[1])
        finally:
            _running.job = None
            beating.set()
            beater.join(timeout=5)

    def run(self) -> None:
        """Until :meth:`stop`: run jobs, sleeping ``poll_seconds`` when there is none."""
        _LIVE_WORKERS.add(self.name)
        try:
            while not self.stopping.is_set():
                try:
                    busy = self.run_once()
                except Exception:  # a database hiccup must not kill the worker
                    log.exception("worker %s: claiming a job failed", self.name)
                    busy = False
                if not busy:
                    self.stopping.wait(self.poll)
        finally:
            _LIVE_WORKERS.discard(self.name)

    def start(self) -> Worker:
        self.thread = threading.Thread(target=self.run, name=f"worker-{self.name}", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the running job (if any), then stop."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=timeout)
