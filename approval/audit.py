"""approval.audit: who acts (Principal and roles), the append-only audit log, and write transactions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from layers.store import WRITE_OPTION

Role = Literal["planner", "reviewer", "admin", "approval_system", "department"]
ROLES: tuple[Role, ...] = ("planner", "reviewer", "admin", "approval_system", "department")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role (the audit log records both)."""

    name: str
    role: Role
    key_id: str = ""
    department: str | None = None  # the department a ``department`` key answers for


SYSTEM = Principal("system", "admin")

metadata = sa.MetaData()

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("actor", sa.String(200)),
    sa.Column("role", sa.String(32)),
    sa.Column("action", sa.String(64)),
    sa.Column("subject_type", sa.String(32)),
    sa.Column("subject_id", sa.String(200)),
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    sa.Column("detail", sa.Text),
)
INSERT_ENTRY = audit_log.insert()


def now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction (BEGIN IMMEDIATE on SQLite, so concurrent writers queue instead of failing)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------- audit


class AuditLog:
    """Append-only: there is no update or delete here, and the database refuses them too."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def append(
        conn: Connection,
        who: Principal,
        action: str,
        subject_type: str,
        subject_id: str,
        *,
        before: Any = None,
        after: Any = None,
        detail: Any = None,
    ) -> None:
        """Write one entry on ``conn``, inside the caller's transaction (so it commits with the change)."""
        conn.execute(
            INSERT_ENTRY,  # values bound as parameters: one compiled statement for every entry
            {
                "at": now(),
                "actor": who.name,
                "role": who.role,
                "action": action,
                "subject_type": subject_type,
                "subject_id": str(subject_id),
                "before": _json(before),
                "after": _json(after),
                "detail": _json(detail),
            },
        )

    def record(self, who: Principal, action: str, subject_type: str, subject_id: str, **kw: Any) -> None:
        """Write one entry in its own transaction (for changes another store committed)."""
        with write(self.engine) as conn:
            self.append(conn, who, action, subject_type, subject_id, **kw)

    def entries(
        self,
        *,
        subject_type: str | None = None,
        subject_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        if subject_type:
            query = query.where(audit_log.c.subject_type == subject_type)
        if subject_id:
            query = query.where(audit_log.c.subject_id == subject_id)
        if action:
            query = query.where(audit_log.c.action == action)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
        return [
            {
                "id": r["id"],
                "at": _iso(r["at"]),
                "actor": r["actor"],
                "role": r["role"],
                "action": r["action"],
                "subject_type": r["subject_type"],
                "subject_id": r["subject_id"],
                "before": json.loads(r["before"]) if r["before"] else None,
                "after": json.loads(r["after"]) if r["after"] else None,
                "detail": json.loads(r["detail"]) if r["detail"] else None,
            }
            for r in rows
        ]
