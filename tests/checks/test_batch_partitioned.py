"""`blueprint check-batch --out DIR`: partitioned parquet equal to the one-file table, on dask too, and a
killed run that resumes from its last finished partition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pandas.testing import assert_frame_equal
from typer.testing import CliRunner

from bench.bench_check import direct_blueprint
from blueprint.model import Blueprint
from checks import batch_pieces, batch_sources
from checks.batch import screen_batch
from checks.batch_store import read_results
from checks.engine import Screener
from checks.errors import CheckError
from checks.rules import load_rules
from cli.main import build_app
from layers.catalogue import load_catalogue
from runtime.settings import Settings
from runtime.stores import open_stores
from tests.checks.conftest import kill_after_first_partition, make_blueprint, parcels, rect
from tests.checks.test_batch import city_parcels

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A published ≈4 000-piece synthetic city and 300 parcels (every fifth one concave, holed or
    multipart) as one GeoParquet file and as a partitioned GeoParquet directory of three files."""
    root = tmp_path_factory.mktemp("batchdir")
    stores = open_stores(Settings(data_dir=root))
    try:
        draft = direct_blueprint(4000)
        draft.version, draft.status = "v1", "draft"
        draft.conflicts = make_blueprint().conflicts.to_crs(draft.crs)  # the store wants the columns
        stores.blueprints.save_draft(draft)
        stores.blueprints.publish("v1", by="test")
    finally:
        stores.close()
    frame = city_parcels(300)
    frame.to_parquet(root / "parcels.parquet")
    (root / "dataset").mkdir()
    for i in range(3):
        frame.iloc[i * 100:(i + 1) * 100].to_parquet(root / "dataset" / f"part.{i}.parquet")
    return root


@pytest.fixture(scope="module")
def single(data_dir, tmp_path_factory):
    """Today's one-file output of the same parcels (the reference)."""
    out = tmp_path_factory.mktemp("single") / "all.parquet"
    env = os.environ | {"BLUEPRINT_DATA_DIR": str(data_dir)}
    result = CliRunner(env=env).invoke(build_app(), ["check-batch", str(data_dir / "parcels.parquet"),
                                                     "--out", str(out), "--version", "v1"])
    assert result.exit_code == 0, result.output
    table = gpd.read_parquet(out)
    assert table["parcel_id"].nunique() == 300 and len(table) > 300  # several kinds per parcel
    return table


def test_partitioned_output_equals_the_one_file_table(run, data_dir, single, tmp_path):
    out = tmp_path / "parts"
    result = run("check-batch", data_dir / "parcels.parquet", "--out", out, "--version", "v1",
                 "--partition-size", 45)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["partitions"] == 7 and summary["complete"] and summary["rows"] == len(single)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["status"] for p in manifest["partitions"]] == ["done"] * 7
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [f"part-{i:05d}.parquet" for i in range(7)]
    assert manifest["run"]["blueprint_version"] == "v1" and manifest["partition_count"] == 7
    assert len(manifest["run"]["input_checksum"]) == 64
    # each part holds whole parcels, a spatially compact run of them
    ids = [set(gpd.read_parquet(p)["parcel_id"]) for p in sorted(out.glob("part-*.parquet"))]
    assert sum(len(s) for s in ids) == 300 and len(set().union(*ids)) == 300
    assert_frame_equal(read_results(out), single)


def test_a_partitioned_parquet_dataset_is_one_input(run, data_dir, single, tmp_path):
    result = run("check-batch", data_dir / "dataset", "--out", tmp_path / "parts", "--version", "v1",
                 "--partition-size", 120)
    assert result.exit_code == 0, result.output
    assert_frame_equal(read_results(tmp_path / "parts"), single)  # ids not prefixed by part file


def test_partitioned_on_dask_equals_in_process(run, data_dir, single, tmp_path, monkeypatch):
    """The workers read the version's pieces from the data dir: the driver never pickles its Screener."""
    def refuse(self):
        raise AssertionError("the screener was pickled for the workers")

    monkeypatch.setattr(Screener, "__getstate__", refuse)
    result = run("check-batch", data_dir / "parcels.parquet", "--out", tmp_path / "parts", "--version", "v1",
                 "--partition-size", 60, "--dask", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["engine"] == "dask"
    assert_frame_equal(read_results(tmp_path / "parts"), single)
    kept = data_dir / "versions" / "v1" / "screening"
    assert {"pieces.parquet", *batch_sources.NAMES} <= {p.name for p in kept.iterdir()}


def _stored_screener(data_dir: Path) -> tuple[Blueprint, Screener]:
    """The stored v1 and the Screener the driver builds on it."""
    stores = open_stores(Settings(data_dir=data_dir))
    try:
        blueprint = stores.blueprints.get("v1")
    finally:
        stores.close()
    catalogue = load_catalogue()
    return blueprint, Screener(blueprint, load_rules(None, catalogue), catalogue)


def test_a_screener_read_from_the_piece_file_screens_the_same(data_dir, single, tmp_path):
    """What a worker builds from pieces.parquet gives the driver's table exactly; another version's
    file is refused, not used."""
    blueprint, driver = _stored_screener(data_dir)
    source = batch_pieces.piece_file(driver, blueprint, tmp_path / "screening")
    worker = batch_pieces.screener_for(source)
    assert worker is not driver and worker.piece_count == driver.piece_count
    assert batch_pieces.screener_for(source) is worker  # built once per process
    frame = gpd.read_parquet(data_dir / "parcels.parquet")
    assert_frame_equal(screen_batch(frame, worker, "industrial"), single)
    stale = batch_pieces.PieceFile(source.directory, "0" * 64, "other", *list(vars(source).values())[3:])
    with pytest.raises(CheckError, match="other pieces"):
        batch_pieces.screener_for(stale)


def _cli(data_dir: Path, *args: object) -> list[str]:
    return [sys.executable, "-m", "cli.main", "check-batch", str(data_dir / "parcels.parquet"),
            "--version", "v1", *map(str, args)]


def _env(data_dir: Path) -> dict[str, str]:
    return os.environ | {"BLUEPRINT_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}


def test_a_killed_run_resumes_from_its_last_finished_partition(data_dir, single, tmp_path):
    out = tmp_path / "parts"
    args = ("--out", out, "--partition-size", 50)
    first, stderr = kill_after_first_partition(_cli(data_dir, *args), _env(data_dir), out)
    assert first == [0], stderr
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert list(kept) == ["part-00000.parquet"]

    again = subprocess.run(_cli(data_dir, *args), env=_env(data_dir), capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    summary = json.loads(again.stdout)
    assert summary["partitions"] == 6 and summary["partitions_resumed"] == 1 and summary["complete"]
    assert "resuming" in again.stderr.decode()
    manifest = json.loads((out / "manifest.json").read_text())
    # partition 0 was not computed again: same file, recorded by the first run (run 0), the rest by run 1
    assert (out / "part-00000.parquet").stat().st_mtime_ns == kept["part-00000.parquet"]
    assert [p["run"] for p in manifest["partitions"]] == [0, 1, 1, 1, 1, 1] and manifest["resumed"] == 1
    assert not list(out.glob(".*"))  # no temp file left
    assert_frame_equal(read_results(out), single)


def test_changed_input_refuses_to_resume_unless_restart(run, data_dir, tmp_path):
    source = tmp_path / "in.parquet"
    frame = city_parcels(300).iloc[:80]
    frame.to_parquet(source)
    out = tmp_path / "parts"
    assert run("check-batch", source, "--out", out, "--version", "v1", "--partition-size", 30).exit_code == 0
    moved = frame.copy()
    moved.loc[moved.index[0], "geometry"] = shapely.affinity.translate(moved.geometry.iloc[0], 5, 0)
    moved.to_parquet(source)

    refused = run("check-batch", source, "--out", out, "--version", "v1", "--partition-size", 30)
    assert refused.exit_code == 3, refused.output
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "batch_resume_mismatch"
    assert "parcel input" in error["detail"] and "--restart" in error["detail"]
    assert "project type" not in error["detail"]

    other = run("check-batch", source, "--out", out, "--version", "v1", "--partition-size", 40)
    assert other.exit_code == 3 and "partition size" in json.loads(other.stdout)["error"]["detail"]

    restarted = run("check-batch", source, "--out", out, "--version", "v1", "--partition-size", 40,
                    "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert json.loads(restarted.stdout)["partitions_resumed"] == 0
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]
    table = read_results(out)
    assert table["parcel_id"].nunique() == 80


def test_out_directory_with_foreign_files_is_refused(run, data_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run("check-batch", data_dir / "parcels.parquet", "--out", out, "--version", "v1")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == "batch_output_error"
    assert (out / "notes.txt").read_text() == "mine"


def test_row_order_does_not_depend_on_the_input_order(screener):
    """Ids equal under the natural order ("B7", "B07") are ordered by the id itself, so partitions and a
    single run sort their rows the same way."""
    shapes = [rect(10, 10, 20, 20), rect(110, 30, 140, 40), rect(250, 50, 260, 60)]
    ids = ["B7", "B07", "B10"]
    forward = screen_batch(parcels(*shapes, ids=ids).frame, screener, "industrial")
    backward = screen_batch(parcels(*shapes[::-1], ids=ids[::-1]).frame, screener, "industrial")
    assert list(dict.fromkeys(forward["parcel_id"])) == ["B07", "B7", "B10"]
    assert_frame_equal(forward, backward)


def test_workers_without_the_piece_file_get_the_screener(data_dir, single, tmp_path, monkeypatch):
    """A cluster that cannot see the data dir (a remote one without shared storage) still runs: the
    screener is sent to its workers as before; one that sees it reads the pieces itself."""
    from dask.distributed import Client

    from checks.batch_runner import run_batch, run_key, split
    from checks.batch_store import BatchDir

    blueprint, screener = _stored_screener(data_dir)
    seen = batch_pieces.piece_file(screener, blueprint, tmp_path / "seen")
    unseen = batch_pieces.PieceFile(str(tmp_path / "nowhere"), *list(vars(seen).values())[1:])
    work = screener.validated(gpd.read_parquet(data_dir / "parcels.parquet"), "batch")
    parts = split(work, 100)
    loaded: list[str] = []
    real = batch_pieces.read_blueprint
    monkeypatch.setattr(batch_pieces, "read_blueprint", lambda d, e: loaded.append(str(d)) or real(d, e))
    monkeypatch.setattr(batch_pieces, "_cache", {})
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        for name, source in (("unseen", unseen), ("seen", seen)):
            key = run_key(screener, "industrial", name, "{}", 100, len(work))
            batch = BatchDir.open(tmp_path / name / "out", key, [len(p) for p in parts])
            run_batch(work, screener, "industrial", batch, parts, client=client, pieces=source)
            assert_frame_equal(read_results(tmp_path / name / "out"), single)
    assert loaded == [seen.directory]  # only the visible file was read, once


def test_one_file_dask_run_reads_the_piece_file(run, data_dir, single, tmp_path, monkeypatch):
    """`check-batch --out x.parquet --dask`: workers build their screener from the version's pieces."""
    def refuse(self):
        raise AssertionError("the screener was pickled for the workers")

    monkeypatch.setattr(Screener, "__getstate__", refuse)
    result = run("check-batch", data_dir / "parcels.parquet", "--out", tmp_path / "all.parquet", "--version",
                 "v1", "--dask", "--workers", 1, "--partitions", 3)
    assert result.exit_code == 0, result.output
    assert_frame_equal(gpd.read_parquet(tmp_path / "all.parquet"), single)
