"""Disk full (issue #16 defect 6): a clear 507, nothing stored half, and /ready says not ready.

The red team filled the disk and got 500s and dropped connections. A full disk cannot be made safely
on a shared test machine, so the writes fail the way they do on one: SQLite's "database or disk is
full", PostgreSQL's disk_full (SQLSTATE 53100) and ENOSPC from file writes.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa

from api.errors import is_disk_full
from checks.store import CheckStore
from tests.api.conftest import JOB_THRESHOLD, PASS_PARCEL, Api, collection, rect
from tests.api.test_service import assert_error


def _count(city: Api, table: str, where: str = "") -> int:
    with city.services.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())


def _check_audit(city: Api) -> int:
    """Audit entries about checks only: the in-process worker may audit a tiles job meanwhile."""
    return _count(city, "audit_log", "WHERE subject_type = 'check'")


class _PgDiskFull(Exception):
    pgcode = "53100"


@pytest.mark.parametrize("error", [
    sa.exc.OperationalError("INSERT INTO checks", {}, sqlite3.OperationalError("database or disk is full")),
    sa.exc.OperationalError("INSERT INTO checks", {}, _PgDiskFull("could not extend file")),
    OSError(errno.ENOSPC, "No space left on device"),
], ids=["sqlite", "postgresql", "enospc"])
def test_a_check_on_a_full_disk_is_507_and_stores_nothing(
        city: Api, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    before = _count(city, "checks"), _check_audit(city)
    real = CheckStore.save

    def full(self: CheckStore, *args: Any, **kwargs: Any) -> str:
        kwargs["with_insert"] = lambda conn: (_ for _ in ()).throw(error)  # fails inside the transaction
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CheckStore, "save", full)
    r = city.post("approval_system", "/api/v1/checks",
                  json={"project_type": "industrial", "parcels": collection(PASS_PARCEL)})
    assert_error(r, 507, "insufficient_storage")
    assert r.headers["Retry-After"]
    assert (_count(city, "checks"), _check_audit(city)) == before


def test_a_job_whose_input_cannot_be_written_is_507_and_not_queued(
        city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _count(city, "jobs")

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("geopandas.GeoDataFrame.to_parquet", full)
    geoms = [rect(1010 + i * 20, 10, 1020 + i * 20, 20) for i in range(JOB_THRESHOLD + 2)]
    body = {"project_type": "industrial", "parcels": collection(*geoms)}
    r = city.post("planner", "/api/v1/checks", json=body)
    assert_error(r, 507, "insufficient_storage")
    assert _count(city, "jobs") == before
    leftovers = list((city.services.settings.data_dir / "jobs").glob("*.partial"))
    assert not leftovers


def test_an_upload_on_a_full_disk_is_507(city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import api.uploads

    async def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api.uploads._Receiver, "flush", full)
    r = city.post("planner", "/api/v1/checks", files={"file": ("p.geojson", b"{}")},
                  data={"project_type": "industrial"})
    assert_error(r, 507, "insufficient_storage")


def test_ready_says_not_ready_when_the_data_dir_is_full(city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    assert city.client.get("/ready").status_code == 200
    monkeypatch.setattr("shutil.disk_usage", lambda path: type("U", (), {"free": 1024})())
    r = city.client.get("/ready")
    assert_error(r, 503, "not_ready")
    assert "free" in r.json()["detail"]


def test_disk_full_is_recognised_through_wrappers() -> None:
    assert is_disk_full(OSError(errno.EDQUOT, "quota"))
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
    assert not is_disk_full(RuntimeError("boom"))


def test_ready_says_not_ready_while_the_data_dir_cannot_be_written(
        city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import api.routes.health

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(api.routes.health.tempfile, "NamedTemporaryFile", read_only)
    r = city.client.get("/ready")
    assert_error(r, 503, "not_ready")
    assert r.json()["detail"] == "data directory cannot be written: Read-only file system"
    monkeypatch.undo()
    assert city.client.get("/ready").status_code == 200, "ready again once it can"
