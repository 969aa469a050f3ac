"""Database fixtures: the same tests on the embedded SpatiaLite and on the real local PostGIS server."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy.engine import Engine

from runtime.db import make_engine, migrate

PG_SERVER = os.environ.get("BLUEPRINT_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
PG_ADMIN_DSN = f"{PG_SERVER}/postgres"
KEEP_TABLES = ("spatial_ref_sys", "alembic_version")  # PostGIS metadata and the schema revision


@pytest.fixture(scope="session")
def postgis_database_url() -> Iterator[str]:
    """A fresh, migrated PostGIS database for this test session, dropped at the end."""
    try:
        admin = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostGIS server {PG_SERVER} unreachable: {str(exc).strip()}")
    admin.autocommit = True
    name = f"blueprint_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{PG_SERVER}/{name}"
    try:
        engine = make_engine(url)  # creates the postgis extension
        migrate(engine)
        engine.dispose()
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="session")
def spatialite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SpatiaLite file, copied for each test (much faster than migrating every time)."""
    path = tmp_path_factory.mktemp("spatialite") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    engine.dispose()
    return path


@pytest.fixture(params=["spatialite", pytest.param("postgis", marks=pytest.mark.postgis)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a migrated database with no rows, on each backend in turn."""
    if request.param == "spatialite":
        target = tmp_path / "db" / "blueprint.sqlite"
        target.parent.mkdir()
        shutil.copyfile(request.getfixturevalue("spatialite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgis_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated Engine on ``db_url``, disposed after the test."""
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


def _truncate_all(url: str) -> None:
    """Empty every table of the session database (whatever migrations created them)."""
    eng = make_engine(url)
    try:
        with eng.begin() as conn:
            tables = conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
            names = [t for t in tables if t not in KEEP_TABLES]
            if names:
                # append-only tables (the audit log) guard themselves with triggers; tests reset them anyway
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
                quoted = ", ".join(f'"{t}"' for t in names)
                conn.execute(sa.text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    finally:
        eng.dispose()


def fresh_postgres_database(request: pytest.FixtureRequest) -> str:
    """URL of a new, empty database (no PostGIS, no tables), dropped when the test ends."""
    admin = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=3)
    admin.autocommit = True
    name = f"blueprint_fresh_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()

    request.addfinalizer(drop)
    return f"{PG_SERVER}/{name}"
