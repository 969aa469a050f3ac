"""checks.store: check results kept as the exact JSON text returned, by check id and idempotency key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from checks.errors import CheckError, CheckNotFoundError
from layers.store import as_utc, utcnow, write_transaction

CHECKS = sa.table(
    "checks",
    sa.column("check_id", sa.String), sa.column("blueprint_version", sa.String),
    sa.column("project_type", sa.String), sa.column("verdict", sa.String),
    sa.column("result_json", sa.Text), sa.column("input_hash", sa.String),
    sa.column("idempotency_key", sa.String), sa.column("created_by", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
INSERT_CHECK = sa.insert(CHECKS)
META_COLUMNS = ("check_id", "blueprint_version", "project_type", "verdict", "input_hash",
                "idempotency_key", "created_by", "created_at")


class CheckIdConflictError(CheckError):
    """A check id was reused for a different result (ids are meant to be unique)."""

    code = "check_id_conflict"


class CheckStore:
    """Results are write-once: the text given to :meth:`save` is what :meth:`get` returns, forever."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, check_id: str, result_json: str, *, blueprint_version: str, project_type: str,
             verdict: str, input_hash: str, idempotency_key: str | None = None, by: str = "system",
             with_insert: Callable[[Connection], None] | None = None) -> str:
        """Store a result; returns the stored JSON text.

        If ``idempotency_key`` was used before, nothing is stored and the first result is returned
        unchanged (also when two saves with the same key race: the database's unique constraint decides).
        ``with_insert(conn)`` runs in the same transaction as the insert (the service's audit entry), so
        the check and what goes with it commit together or not at all.
        """
        row = {"check_id": check_id, "result_json": result_json, "blueprint_version": blueprint_version,
               "project_type": project_type, "verdict": verdict, "input_hash": input_hash,
               "idempotency_key": idempotency_key, "created_by": by, "created_at": utcnow()}
        try:
            # no SELECT first: a new check (the usual case) is one INSERT (a compiled statement reused
            # from the cache, values bound as parameters); a key or id seen before breaks the unique
            # constraints (or, on SQLite, the write-once trigger) and is answered below
            with write_transaction(self.engine) as conn:
                conn.execute(INSERT_CHECK, row)
                if with_insert is not None:
                    with_insert(conn)
        except IntegrityError:
            # a concurrent save won the race for this key or id; its result is the answer
            with self.engine.connect() as conn:
                earlier = self._earlier(conn, check_id, result_json, idempotency_key)
            if earlier is None:
                raise
            return earlier
        return result_json

    def get(self, check_id: str) -> str:
        """The stored JSON text, byte for byte."""
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(CHECKS.c.result_json).where(CHECKS.c.check_id == check_id)).scalar()
        if text is None:
            raise CheckNotFoundError(f"no check with id {check_id!r}")
        return str(text)

    def exists(self, check_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(CHECKS.c.check_id).where(CHECKS.c.check_id == check_id)).first()
        return found is not None

    def find_by_key(self, idempotency_key: str) -> str | None:
        """The result first stored under ``idempotency_key``, if any (lets a retry skip screening)."""
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(CHECKS.c.result_json)
                                .where(CHECKS.c.idempotency_key == idempotency_key)).scalar()
        return None if text is None else str(text)

    def meta(self, check_id: str) -> dict[str, Any]:
        """Who ran the check, when, on which version, with which verdict (without the result)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*(CHECKS.c[c] for c in META_COLUMNS))
                               .where(CHECKS.c.check_id == check_id)).mappings().first()
        if row is None:
            raise CheckNotFoundError(f"no check with id {check_id!r}")
        return _meta(row)

    def get_with_meta(self, check_id: str) -> tuple[str, dict[str, Any]]:
        """:meth:`get` and :meth:`meta` in one query (a reader that needs both, e.g. the checklist)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(CHECKS.c.result_json, *(CHECKS.c[c] for c in META_COLUMNS))
                               .where(CHECKS.c.check_id == check_id)).mappings().first()
        if row is None:
            raise CheckNotFoundError(f"no check with id {check_id!r}")
        return str(row["result_json"]), _meta(row)

    @staticmethod
    def _earlier(conn: Connection, check_id: str, result_json: str, key: str | None) -> str | None:
        """The stored answer for this key, or for this very id; None when this is a new check."""
        if key is not None:
            text = conn.execute(sa.select(CHECKS.c.result_json)
                                .where(CHECKS.c.idempotency_key == key)).scalar()
            if text is not None:
                return str(text)
        stored = conn.execute(sa.select(CHECKS.c.result_json).where(CHECKS.c.check_id == check_id)).scalar()
        if stored is None:
            return None
        if stored != result_json:
            raise CheckIdConflictError(f"check id {check_id!r} is stored already with another result")
        return str(stored)


def _meta(row: sa.RowMapping) -> dict[str, Any]:
    """The metadata columns of a checks row, ``created_at`` as ISO 8601 in UTC."""
    out = {c: row[c] for c in META_COLUMNS}
    created = as_utc(out["created_at"])
    out["created_at"] = created.isoformat() if created else None
    return out
