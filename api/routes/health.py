"""api.routes.health: liveness (/health) and readiness (/ready: database reachable, migrations at head)."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.errors import error_body
from api.routes.common import ServicesDep
from runtime.db import MIGRATIONS_DIR

router = APIRouter(tags=["运行状态 health"])


@router.get("/health", summary="存活 Liveness")
def health() -> dict[str, str]:
    """The process answers; no dependency is touched."""
    return {"status": "ok"}


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration (parsing the scripts takes ~20 ms; they do not change while running)."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


MIN_FREE_BYTES = 64 * 1024 * 1024


def data_dir_problem(data_dir: Path) -> str | None:
    """Why the data directory cannot take writes now (missing, read-only, full), or None."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".ready-") as probe:
            probe.write(b"ready")
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(data_dir).free
    except OSError as exc:
        return f"data directory cannot be written: {os.strerror(exc.errno) if exc.errno else exc}"
    if free < MIN_FREE_BYTES:
        return f"data directory has only {free // (1024 * 1024)} MB free"
    return None


@router.get("/ready", summary="就绪 Readiness", responses={503: {"description": "not ready"}})
def ready(services: ServicesDep) -> Any:
    """Ready when the database answers, its schema is at the newest migration and the data directory
    can be written (job inputs, reports and the embedded database live there)."""
    try:
        with services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.SQLAlchemyError as exc:
        return JSONResponse(
            error_body("not_ready", f"database unreachable: {type(exc).__name__}"), status_code=503
        )
    problem = data_dir_problem(services.settings.data_dir)
    if problem is not None:
        return JSONResponse(error_body("not_ready", problem), status_code=503)
    head = head_revision()
    if current != head:
        return JSONResponse(
            error_body("not_ready", f"database schema at {current}, code expects {head}"), status_code=503
        )
    return {"status": "ready", "database": services.engine.dialect.name, "revision": current}
