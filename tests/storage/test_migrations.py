"""Migrations: upgrade to head creates spatially indexed tables; running it again changes nothing."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from layers.errors import CRSMismatchError
from runtime.db import MIGRATIONS_DIR, make_engine, migrate, open_database
from runtime.settings import Settings
from tests.conftest import ROOT
from tests.dbfixtures import fresh_postgres_database

GEOMETRY_TABLES = {"layer_features", "pieces", "conflicts"}


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _schema(engine: sa.Engine) -> dict[str, list[str]]:
    inspector = sa.inspect(engine)
    tables = sorted(inspector.get_table_names())
    return {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in tables}


def test_migrate_twice_is_a_no_op(engine: sa.Engine) -> None:
    before = _schema(engine)
    migrate(engine)
    migrate(engine)
    assert _schema(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == _head()


def test_core_tables_have_spatial_columns_and_indexes(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT lower(f_table_name), srid FROM geometry_columns WHERE lower(f_geometry_column) = 'geom'"
        )).all()
        assert GEOMETRY_TABLES <= {table for table, _ in rows}
        assert {srid for table, srid in rows if table in GEOMETRY_TABLES} == {4548}
        if engine.dialect.name == "sqlite":
            indexed = conn.execute(sa.text(
                "SELECT lower(f_table_name) FROM geometry_columns WHERE spatial_index_enabled = 1")).scalars()
        else:
            indexed = conn.execute(sa.text(
                "SELECT tablename FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")).scalars()
        assert GEOMETRY_TABLES <= set(indexed)


def test_fresh_spatialite_database_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var" / "data")
    engine = open_database(settings)
    try:
        assert (tmp_path / "var" / "data" / "blueprint.sqlite").exists()
        assert GEOMETRY_TABLES <= set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        engine.dispose()
    again = make_engine(settings.resolved_database_url)  # reopening: metadata is not initialised twice
    migrate(again)
    again.dispose()


def test_working_crs_of_a_new_database_is_configurable(tmp_path: Path) -> None:
    engine = open_database(Settings(data_dir=tmp_path, work_crs_epsg=4527))
    try:
        with engine.connect() as conn:
            srids = conn.execute(sa.text("SELECT DISTINCT srid FROM geometry_columns "
                                         "WHERE f_table_name = 'pieces'")).scalars().all()
        assert srids == [4527]
    finally:
        engine.dispose()


def test_changing_the_working_crs_of_an_existing_database_is_refused(tmp_path: Path) -> None:
    open_database(Settings(data_dir=tmp_path)).dispose()
    with pytest.raises(CRSMismatchError, match="EPSG:4548"):
        open_database(Settings(data_dir=tmp_path, work_crs_epsg=4527))


GDAL_AFTER_SPATIALITE = """
import sys
from runtime.db import make_engine
engine = make_engine(sys.argv[1])
with engine.connect() as conn:
    conn.exec_driver_sql("SELECT spatialite_version()")
import geopandas as gpd, numpy as np, rasterio, shapely
from rasterio.transform import from_origin
out = sys.argv[2]
gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4548).to_file(out, layer="v")
with rasterio.open(out, "w", driver="GPKG", raster_table="r", append_subdataset="YES", width=4, height=4,
                   count=1, dtype="uint8", crs="EPSG:4548", transform=from_origin(0, 4, 1, 1)) as dst:
    dst.write(np.ones((1, 4, 4), dtype="uint8"))
print(len(gpd.read_file(out, layer="v")))
"""


def test_geopackages_still_work_after_spatialite_is_loaded(tmp_path: Path) -> None:
    """A fresh process: GDAL used after mod_spatialite (a segfault when loaded in the wrong order)."""
    done = subprocess.run([sys.executable, "-c", GDAL_AFTER_SPATIALITE, f"sqlite:///{tmp_path / 'db.sqlite'}",
                           str(tmp_path / "out.gpkg")], capture_output=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == "1"


@pytest.mark.parametrize("backend", ["spatialite", pytest.param("postgis", marks=pytest.mark.postgis)])
def test_processes_starting_at_once_on_a_new_database(backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """Several services opening a brand-new database together: one creates it, none fails."""
    if backend == "spatialite":
        url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    else:
        request.getfixturevalue("postgis_database_url")  # skips when the server is unreachable
        url = fresh_postgres_database(request)

    def start(_: int) -> str:
        engine = make_engine(url)
        try:
            migrate(engine)
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one())
        finally:
            engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(start, range(4))) == {_head()}
