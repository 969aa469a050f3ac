"""`check-batch --bounded` (checks.batch_regions): each partition screened with only the pieces near it,
read through the store's spatial index (SpatiaLite and PostGIS), gives the whole-version table row for row,
and a killed bounded run resumes from its last finished partition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pandas.testing import assert_frame_equal
from typer.testing import CliRunner

from bench.bench_check import direct_blueprint
from checks.batch import screen_batch
from checks.batch_regions import Regions, region_box
from checks.batch_runner import run_batch, run_key, split
from checks.batch_store import BatchDir, read_results
from checks.engine import Screener
from checks.rules import load_rules
from cli.main import build_app
from layers.catalogue import load_catalogue
from runtime.settings import Settings
from runtime.stores import Stores, open_stores
from tests.checks.conftest import kill_after_first_partition, make_blueprint
from tests.checks.test_batch import city_parcels

ROOT = Path(__file__).resolve().parents[2]
FAR = "FAR-AWAY"  # a parcel 50 km from the city: its own partition meets no piece


def _publish(stores: Stores) -> None:
    draft = direct_blueprint(4000)
    draft.version, draft.status = "v1", "draft"
    draft.conflicts = make_blueprint().conflicts.to_crs(draft.crs)  # the store wants the columns
    stores.blueprints.save_draft(draft)
    stores.blueprints.publish("v1", by="test")


def _parcels(stores: Stores) -> gpd.GeoDataFrame:
    """city_parcels, five parcels that are exactly pieces (their edges are the neighbours' edges), and
    one far outside the city."""
    frame = city_parcels(300)
    pieces = stores.blueprints.pieces("v1", limit=5, offset=1000)
    exact = gpd.GeoDataFrame({"parcel_id": [f"EXACT{i}" for i in range(5)]},
                             geometry=list(pieces.geometry), crs=frame.crs)
    far = gpd.GeoDataFrame({"parcel_id": [FAR]},
                           geometry=[shapely.box(*(frame.total_bounds[2:] + 50_000),
                                                 *(frame.total_bounds[2:] + 50_100))],
                           crs=frame.crs)
    return gpd.GeoDataFrame(pd.concat([frame, exact, far], ignore_index=True), crs=frame.crs)


@pytest.fixture
def stored(db_url, tmp_path):
    """A published ≈4 000-piece synthetic city on each backend, and its stores."""
    stores = open_stores(Settings(data_dir=tmp_path / "data", database_url=db_url))
    _publish(stores)
    yield stores
    stores.close()


def _regions(stores: Stores, margin: float) -> Regions:
    catalogue = load_catalogue()
    count = stores.blueprints.summary("v1")["piece_count"]
    return Regions(stores.blueprints.head("v1"), lambda box: stores.blueprints.pieces("v1", bbox=box),
                   load_rules(None, catalogue), catalogue, 1.0, 0.001, piece_count=count, margin=margin)


def _same(bounded: gpd.GeoDataFrame, whole: gpd.GeoDataFrame) -> None:
    """Row for row: ids, verdicts, errors, kinds, rules, feature ids exactly; areas to 1e-6 m²."""
    assert list(bounded.columns) == list(whole.columns) and len(bounded) == len(whole)
    assert_frame_equal(bounded, whole, check_exact=False, rtol=0, atol=1e-6)
    for column in ("area_m2", "overlap_area_m2", "overlap_ellipsoidal_area_m2", "outside_m2"):
        assert np.allclose(bounded[column].fillna(-1), whole[column].fillna(-1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("margin", [1.0, 0.0])
def test_bounded_partitions_equal_the_whole_version(stored, tmp_path, margin):
    """Partitions of 40 parcels plus one partition holding only the far parcel; margin 0 too, so the
    equality does not lean on the margin: every piece meeting a parcel meets its partition's box."""
    whole_screener = Screener(stored.blueprints.get("v1"), load_rules(None, load_catalogue()),
                              load_catalogue())
    frame = _parcels(stored)
    whole = screen_batch(frame, whole_screener, "industrial")

    regions = _regions(stored, margin)
    head = regions.head_screener()
    assert head.piece_count == 1 and head.version == "v1"  # the placeholder only
    assert head._rules_digest == whole_screener._rules_digest
    work = head.validated(frame, "batch")
    far = int(np.flatnonzero(work["parcel_id"].to_numpy() == FAR)[0])
    rest = np.delete(np.arange(len(work)), far)
    parts = [rest[p] for p in split(work.iloc[rest], 40)] + [np.asarray([far])]
    # the parcels that set a partition's box lie on its edges: there are many of them
    on_edge = 0
    for p in parts[:-1]:
        box = region_box(work.iloc[p], 0.0)
        bounds = shapely.bounds(np.asarray(work.geometry.values)[p])
        on_edge += int(((bounds[:, 0] == box[0]) | (bounds[:, 2] == box[2]) | (bounds[:, 1] == box[1])
                        | (bounds[:, 3] == box[3])).sum())
    assert on_edge >= 2 * (len(parts) - 1)

    key = run_key(head, "industrial", "x", "{}", 40, len(work), bounded=True)
    batch = BatchDir.open(tmp_path / "out", key, [len(p) for p in parts])
    run_batch(work, head, "industrial", batch, parts, part_screener=regions.screener)
    bounded = read_results(tmp_path / "out")
    _same(bounded, whole)
    assert regions.loaded[-1] == 0  # the far parcel's partition met no piece ...
    assert set(bounded.loc[bounded["parcel_id"] == FAR, "error"]) == {"parcel_outside_city"}  # ... as whole
    assert max(regions.loaded) < whole_screener.piece_count / 2  # each partition held a part only
    assert bounded["feature_ids"].str.len().gt(2).any()  # feature sets parsed per partition, not empty


def _env(stores: Stores, data_dir: Path, **extra: str) -> dict[str, str]:
    return os.environ | {"BLUEPRINT_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
                         "BLUEPRINT_DATABASE_URL": stores.engine.url.render_as_string(hide_password=False)
                         } | extra


def test_cli_bounded_equals_whole_and_is_part_of_the_run_key(stored, tmp_path):
    data_dir = tmp_path / "data"
    source = tmp_path / "parcels.parquet"
    _parcels(stored).to_parquet(source)

    def run(*args: object, **extra: str):
        runner = CliRunner(env=_env(stored, data_dir, **extra))
        return runner.invoke(build_app(), ["check-batch", str(source), "--version", "v1",
                                           "--partition-size", "45", *map(str, args)])

    whole = run("--out", tmp_path / "whole", "--whole")
    assert whole.exit_code == 0, whole.output
    bounded = run("--out", tmp_path / "bounded", "--bounded")
    assert bounded.exit_code == 0, bounded.output
    assert "bounded:" in bounded.stderr and "pieces at most in one partition" in bounded.stderr
    _same(read_results(tmp_path / "bounded"), read_results(tmp_path / "whole"))
    assert json.loads((tmp_path / "bounded" / "manifest.json").read_text())["run"]["pieces"] == "bounded"

    # a whole run's directory is not continued in bounded mode (nor the other way round)
    mixed = run("--out", tmp_path / "whole", "--bounded")
    assert mixed.exit_code == 3 and "--bounded" in json.loads(mixed.stdout)["error"]["detail"]
    # above the setting's piece count the default is bounded; below it, whole
    auto = run("--out", tmp_path / "bounded", BLUEPRINT_BATCH_BOUNDED_PIECES="100")
    assert auto.exit_code == 0 and json.loads(auto.stdout)["partitions_resumed"] == 7, auto.output
    auto = run("--out", tmp_path / "whole", BLUEPRINT_BATCH_BOUNDED_PIECES="100000")
    assert auto.exit_code == 0 and json.loads(auto.stdout)["partitions_resumed"] == 7, auto.output
    # bounded runs partition by partition in process, into a directory
    one_file = run("--out", tmp_path / "all.parquet", "--bounded")
    assert one_file.exit_code == 3 and "directory" in json.loads(one_file.stdout)["error"]["detail"]


def test_a_killed_bounded_run_resumes(stored, tmp_path):
    data_dir = tmp_path / "data"
    source = tmp_path / "parcels.parquet"
    frame = _parcels(stored)
    frame.to_parquet(source)
    out = tmp_path / "parts"
    cli = [sys.executable, "-m", "cli.main", "check-batch", str(source), "--version", "v1", "--out", str(out),
           "--partition-size", "60", "--bounded"]
    done, stderr = kill_after_first_partition(cli, _env(stored, data_dir), out)
    assert done == [0], stderr
    kept = (out / "part-00000.parquet").stat().st_mtime_ns

    again = subprocess.run(cli, env=_env(stored, data_dir), capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    summary = json.loads(again.stdout)
    assert summary["partitions"] == 6 and summary["partitions_resumed"] == 1 and summary["complete"]
    assert (out / "part-00000.parquet").stat().st_mtime_ns == kept  # not computed again
    whole = screen_batch(frame, Screener(stored.blueprints.get("v1"), load_rules(None, load_catalogue()),
                                         load_catalogue()), "industrial")
    _same(read_results(out), whole)
