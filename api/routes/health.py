"""api.routes.health: liveness (/health) and readiness (/ready: database reachable, migrations at head)."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.db import MIGRATIONS_DIR
from api.errors import error_body
from api.routes.common import ServicesDep

router = APIRouter(tags=["运行状态 health"])


@router.get("/health", summary="存活 Liveness")
def health() -> dict[str, str]:
    """The process answers; no dependency is touched."""
    return {"status": "ok"}


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration (parsing the scripts takes ~20 ms; they do not change while running)."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


@router.get("/ready", summary="就绪 Readiness", responses={503: {"description": "not ready"}})
def ready(services: ServicesDep) -> Any:
    """Ready when the database answers and its schema is at the newest migration."""
    try:
        with services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.SQLAlchemyError as exc:
        return JSONResponse(
            error_body("not_ready", f"database unreachable: {type(exc).__name__}"), status_code=503
        )
    head = head_revision()
    if current != head:
        return JSONResponse(
            error_body("not_ready", f"database schema at {current}, code expects {head}"), status_code=503
        )
    return {"status": "ready", "database": services.engine.dialect.name, "revision": current}
