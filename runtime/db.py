"""runtime.db: database engines (SpatiaLite through pysqlite3, or PostGIS) and Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from layers.crs import DEFAULT_WORK_EPSG
from layers.errors import CRSMismatchError
from layers.store import WRITE_OPTION, column_srid
from runtime.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# arbitrary but fixed: serialises extension creation and migrations of processes starting at once
MIGRATION_LOCK_ID = 0x0B1E_9217


def make_engine(url: str) -> Engine:
    """An Engine for a ``sqlite:///`` (SpatiaLite) or ``postgresql://`` (PostGIS) URL."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _spatialite_engine(url)
    if backend == "postgresql":
        return _postgis_engine(url)
    raise ValueError(f"unsupported database URL (sqlite or postgresql only): {backend}")


def migrate(engine: Engine, *, srid: int = DEFAULT_WORK_EPSG) -> None:
    """Upgrade the schema to the newest revision; a no-op when already there, safe at every start.

    ``srid`` is the working CRS of geometry columns, used only when they are created.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["srid"] = srid
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # two processes starting at once must not both create the tables
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


def open_database(settings: Settings) -> Engine:
    """The migrated Engine the settings point at; creates ``data_dir`` for the embedded default."""
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine, srid=settings.work_crs_epsg)
    _require_work_crs(engine, settings.work_crs_epsg)
    return engine


def _require_work_crs(engine: Engine, epsg: int) -> None:
    """A database keeps the working CRS it was created with; a different setting is a clear error."""
    with engine.connect() as conn:
        stored = column_srid(conn, "pieces")
    if stored != epsg:
        engine.dispose()
        raise CRSMismatchError(
            f"the database stores geometries in EPSG:{stored} but the working CRS "
            f"is set to EPSG:{epsg} (BLUEPRINT_WORK_CRS_EPSG)"
        )


def _spatialite_engine(url: str) -> Engine:
    import pysqlite3.dbapi2 as sqlite  # the stdlib sqlite3 here cannot load extensions

    _load_gdal_first()

    engine = sa.create_engine(url, module=sqlite)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    _init_spatial_metadata(engine)
    return engine


def _load_gdal_first() -> None:
    """Load GDAL (pyogrio, rasterio) before mod_spatialite.

    mod_spatialite pulls in the system libsqlite3; a GDAL loaded after it binds to that library instead
    of its own and segfaults on the first GeoPackage it reads or writes.
    """
    import pyogrio  # noqa: F401
    import rasterio  # noqa: F401


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun explicitly in _on_sqlite_begin, not by the driver.
    dbapi_conn.isolation_level = None
    dbapi_conn.enable_load_extension(True)
    dbapi_conn.load_extension("mod_spatialite")
    dbapi_conn.enable_load_extension(False)
    # WAL lets readers run beside one writer; busy_timeout makes writers queue instead of failing.
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")
    dbapi_conn.execute("PRAGMA foreign_keys=ON")


def _on_sqlite_begin(conn: sa.Connection) -> None:
    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when
    # another writer got in between; write transactions therefore take the write lock up front.
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _init_spatial_metadata(engine: Engine) -> None:
    """Create SpatiaLite's metadata tables once per database file."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.exec_driver_sql("SELECT CheckSpatialMetaData()").scalar_one() < 1:
                # 0 = run inside our transaction (which is what makes it fast and race-free)
                conn.exec_driver_sql("SELECT InitSpatialMetaData(0)")


def _postgis_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3, not installed here
        parsed = parsed.set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(parsed, pool_pre_ping=True)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        present = conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first()
        if present is None:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    return engine
