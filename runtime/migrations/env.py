"""Alembic environment: runs on the connection handed over by runtime.db.migrate (no alembic.ini)."""

from __future__ import annotations

import geoalchemy2  # noqa: F401  (registers the DDL events that create spatial columns and indexes)
from alembic import context


def run_migrations_online() -> None:
    """Upgrade on the caller's connection, inside the caller's transaction."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through runtime.db.migrate(engine)")
    context.configure(
        connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; use runtime.db.migrate")
run_migrations_online()
