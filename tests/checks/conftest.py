"""A small hand-made blueprint (pieces per the blueprint.model contract) for screening tests.

Layout in metres from tests.geoms (X0, Y0), EPSG:4548, city = [0, 400] × [0, 200]:

    x:   0 ──── 100 ──── 200 ──── 300 ──── 400
    P1 ecological_redline + ecological_space           [0,100]   × [0,200]
    P2 permanent_farmland + agricultural_space          [100,200] × [0,200]
    P3 urban_boundary + urban_space                     [200,300] × [0,200]
    P4 urban_boundary + urban_space + geohazard_zone    [300,400] × [0,100]
    P5 agricultural_space only (outside the boundary)   [300,400] × [100,200]
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from pyproj import CRS
from shapely.geometry import box
from typer.testing import CliRunner

from blueprint.model import Blueprint, LayerRef
from checks.engine import Screener
from checks.rules import Rules, load_rules
from cli.main import build_app
from layers.catalogue import Catalogue, load_catalogue
from layers.model import ParcelSet
from tests.geoms import X0, Y0

LAYERS = {"ecological_redline": "redline", "permanent_farmland": "farmland", "urban_boundary": "urban",
          "urban_space": "zones", "agricultural_space": "zones", "ecological_space": "zones",
          "geohazard_zone": "hazard"}


def rect(x0: float, y0: float, x1: float, y1: float):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def _sources(kinds: list[str], fid: str) -> str:
    return json.dumps([{"kind": k, "layer": LAYERS[k], "feature_id": f"{fid}-{k[:3]}",
                        "source": f"{LAYERS[k]}.shp", "checksum": "x"} for k in kinds])


PIECES = [
    ("P000001", ["ecological_redline", "ecological_space"], rect(0, 0, 100, 200)),
    ("P000002", ["permanent_farmland", "agricultural_space"], rect(100, 0, 200, 200)),
    ("P000003", ["urban_boundary", "urban_space"], rect(200, 0, 300, 200)),
    ("P000004", ["urban_boundary", "urban_space", "geohazard_zone"], rect(300, 0, 400, 100)),
    ("P000005", ["agricultural_space"], rect(300, 100, 400, 200)),
]


def make_blueprint(pieces=PIECES, version: str = "v1") -> Blueprint:
    crs = CRS.from_epsg(4548)
    frame = gpd.GeoDataFrame(
        {"piece_id": [p[0] for p in pieces], "kind": [p[1][0] for p in pieces],
         "kinds": [json.dumps(p[1]) for p in pieces], "covered_by": [json.dumps(p[1]) for p in pieces],
         "sources": [_sources(p[1], p[0]) for p in pieces], "area_m2": [p[2].area for p in pieces]},
        geometry=[p[2] for p in pieces], crs=crs)
    columns = ["conflict_id", "kind_a", "kind_b", "layer_a", "layer_b", "feature_ids", "rule", "resolution",
               "winner"]
    conflicts = gpd.GeoDataFrame({c: pd.Series([], dtype=object) for c in columns} | {"area_m2": []},
                                 geometry=[], crs=crs)
    refs = tuple(LayerRef(k, v, f"{v}.shp", "x", 1) for k, v in LAYERS.items())
    return Blueprint(version=version, crs=crs, pieces=frame, conflicts=conflicts, layers=refs,
                     precedence=("ecological_redline", "permanent_farmland", "urban_boundary"),
                     tolerance_m=0.5, status="published")


def parcels(*geoms, ids=None, crs="EPSG:4548") -> ParcelSet:
    ids = ids or [str(i + 1) for i in range(len(geoms))]
    frame = gpd.GeoDataFrame({"parcel_id": ids}, geometry=list(geoms), crs=crs)
    return ParcelSet(frame=frame, source="test.geojson")


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="session")
def rules(catalogue) -> Rules:
    return load_rules(None, catalogue)


@pytest.fixture(scope="session")
def blueprint() -> Blueprint:
    return make_blueprint()


@pytest.fixture(scope="session")
def screener(blueprint, rules, catalogue) -> Screener:
    return Screener(blueprint, rules, catalogue, tolerance_m2=1.0, tolerance_ratio=0.001)


@pytest.fixture()
def run(data_dir, monkeypatch):
    """The `blueprint` CLI on the module's ``data_dir`` (its own SpatiaLite), as ``run(*args)``."""
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(data_dir))
    monkeypatch.delenv("BLUEPRINT_DATABASE_URL", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(build_app(), [str(a) for a in args])


def done_partitions(out: Path) -> list[int]:
    """The partitions a check-batch manifest in ``out`` marks done ([] until a manifest can be read)."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return []
    return [p["index"] for p in manifest["partitions"] if p["status"] == "done"]


def kill_after_first_partition(cli: list[str], env: dict[str, str], out: Path) -> tuple[list[int], str]:
    """Run check-batch ``cli`` (paused after each partition) until a partition is done, SIGKILL it — no
    clean-up, as after a crash or an OOM kill — and return the partitions done and the end of its stderr."""
    proc = subprocess.Popen([*cli, "--pause-after-partition", "30"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not done_partitions(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    return done_partitions(out), proc.stderr.read().decode()[-2000:]
