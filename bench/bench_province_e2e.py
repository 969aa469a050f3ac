"""bench.bench_province_e2e: a synthetic province end to end — generate, build out of core, store, screen.

    nice -n 10 python bench/bench_province_e2e.py --patches 10000000 --parcels 1000000 \\
        [--data /work/bench-data-e2e] [--via store|parts] [--dask --workers 2] [--sample 200]

Stages, each in a fresh process (the parent samples the process tree every second for VmHWM and
aborts a stage when MemAvailable falls under ``--min-available-gb``):

1. ``generate``: ``bench.province`` with N farmland patches (cached under --data, as bench_province.py);
2. ``build``: ``blueprint.partitioned.build_partitioned`` over the parts (2 threads), into
   ``DATA/e2e-N/datadir/versions/v1`` — where ``blueprint build --out-of-core`` puts a version;
3. ``store`` (``--via store``): a scratch PostGIS database ``bench_e2e_N`` (migrated by the project),
   ``BlueprintStore.save_draft(..., piece_parts=...)`` (PostgreSQL COPY per part) and ``publish`` —
   the documented store at province scale;
4. ``parcels``: M rotated rectangles (80–300 m, bench_check.query_parcels) over the province, fixed seed,
   one GeoParquet file (cached);
5. ``batch``: ``blueprint check-batch PARCELS --out DIR -t residential`` (the CLI: it reads the published
   version from the store, then ``checks.batch_runner`` writes partitioned parquet with a manifest); with
   ``--via parts`` instead the Screener is made from the build's piece parts and the same
   ``checks.batch_runner.run_batch`` runs in process (bench_batch_scale.run_partitioned) — no store;
6. ``spot``: for ``--sample`` random parcels, the areas per kind of the batch's rows against
   ``Screener.screen`` of each parcel alone, on the same pieces (read back from the store by the parcel's
   box, or from the parts), to 1e-6 m².

Per stage: wall s, CPU s (the stage's process and every process it reaped: dask workers included;
PostgreSQL's own backends are not children — their CPU is sampled from /proc and shown apart), peak RSS
(VmHWM of the stage's process and of each other process of its tree above 100 MB), rows written, and the
1-minute load average before→after.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python bench/bench_province_e2e.py
    sys.path.insert(0, str(ROOT))

from bench.bench_province import _generate  # noqa: E402

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PROJECT_TYPE = "residential"  # as bench_batch_scale: every reported kind is a piece kind
VERSION = "v1"  # the first version of a fresh store, as `blueprint build` would name it
PARCEL_SEED = 11


# --- paths ------------------------------------------------------------------------------------------

def run_dir(args: argparse.Namespace) -> Path:
    return Path(args.data) / f"e2e-{args.patches}-seed{args.seed}"


def data_dir(args: argparse.Namespace) -> Path:
    """The service's data dir for this run (BLUEPRINT_DATA_DIR): versions/<v>/ holds the build."""
    return run_dir(args) / "datadir"


def built_file(args: argparse.Namespace) -> Path:
    return data_dir(args) / "versions" / VERSION / "built.pkl"


def parcels_file(args: argparse.Namespace) -> Path:
    return Path(args.data) / f"parcels-{args.parcels}-seed{PARCEL_SEED}-n{args.patches}.parquet"


def batch_out(args: argparse.Namespace) -> Path:
    return run_dir(args) / f"batch-{args.parcels}-{args.via}{'-dask' if args.dask else ''}"


def database(args: argparse.Namespace) -> str:
    return f"bench_e2e_{args.patches}"


def service_env(args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "BLUEPRINT_DATA_DIR": str(data_dir(args)),
            "BLUEPRINT_DATABASE_URL": f"{PG_SERVER}/{database(args)}"}


# --- stages (each runs in its own process: `--stage NAME`) ------------------------------------------

def stage_build(args: argparse.Namespace) -> dict[str, Any]:
    """The out-of-core build, as bench_province's ``ooc`` row, into the data dir's version folder."""
    from bench.bench_province import build_parts
    from blueprint.precedence import load_precedence
    from blueprint.tasks import local_runner
    from layers.catalogue import load_catalogue

    catalogue = load_catalogue()
    out = built_file(args).parent
    shutil.rmtree(out, ignore_errors=True)
    built = build_parts(Path(args.province), out, local_runner(2), catalogue,
                        load_precedence(None, catalogue), args.tolerance, version=VERSION)
    with built_file(args).open("wb") as handle:  # the draft (conflicts, layers; pieces in the parts)
        pickle.dump(built, handle)
    return {"rows": built.piece_count, "note": f"{built.piece_count:,} pieces in {len(built.parts)} parts, "
                                               f"{len(built.blueprint.conflicts):,} conflicts"}


def _built(args: argparse.Namespace) -> Any:
    with built_file(args).open("rb") as handle:
        return pickle.load(handle)  # written by stage_build of this script


def stage_store(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh PostGIS database, migrated; the draft saved with COPY per piece part; published."""
    import psycopg2

    from runtime.settings import Settings
    from runtime.stores import open_stores

    admin = psycopg2.connect(f"{PG_SERVER}/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database(args)}"')
        cur.execute(f'CREATE DATABASE "{database(args)}"')
    admin.close()
    built = _built(args)
    stores = open_stores(Settings(database_url=f"{PG_SERVER}/{database(args)}", data_dir=data_dir(args)))
    try:
        t0 = time.perf_counter()
        summary = stores.blueprints.save_draft(built.blueprint, piece_parts=built.parts)
        saved = time.perf_counter() - t0
        stores.blueprints.publish(VERSION, "bench")
        published = time.perf_counter() - t0 - saved
        rows = stores.blueprints.count(VERSION)
    finally:
        stores.close()
    return {"rows": rows, "note": f"save_draft (COPY) {saved:.1f} s, publish {published:.1f} s; "
                                  f"{summary.get('piece_count', rows):,} pieces stored"}


def stage_parcels(args: argparse.Namespace) -> dict[str, Any]:
    """M construction parcels over the province box (fixed seed), one GeoParquet file; per-zone counts."""
    import geopandas as gpd
    import numpy as np

    from bench.bench_check import WORK, query_parcels
    from bench.province import province_box

    geoms = query_parcels(args.parcels, seed=PARCEL_SEED, margin=1000.0, box=province_box())
    frame = gpd.GeoDataFrame({"parcel_id": [f"P{i}" for i in range(args.parcels)]}, geometry=geoms, crs=WORK)
    # a province-wide file is in CGCS2000 lon/lat: one GK zone's metres are refused outside that zone
    frame.to_crs(4490).to_parquet(parcels_file(args))
    lon = frame.geometry.centroid.to_crs(4490).x.to_numpy()
    zones = np.floor((lon + 1.5) / 3).astype(int)
    counts = dict(zip(*np.unique(zones, return_counts=True), strict=True))
    return {"rows": len(frame), "note": "per 3° zone " + ", ".join(f"{z}: {c:,}" for z, c in counts.items())}


def stage_parts_batch(args: argparse.Namespace) -> dict[str, Any]:
    """--via parts: the Screener from the build's piece parts, the CLI's partitioned runner in process."""

    from bench.bench_batch_scale import run_partitioned
    from checks.batch_fast import feature_sets
    from checks.engine import Screener
    from checks.rules import load_rules
    from layers.catalogue import load_catalogue

    built = _built(args)
    t0 = time.perf_counter()
    built.blueprint.pieces = built.pieces()
    built.blueprint.status = "published"
    catalogue = load_catalogue()
    screener = Screener(built.blueprint, load_rules(None, catalogue), catalogue)
    feature_sets(screener, built_file(args).parent / "screening")  # as check-batch does per version
    ready = time.perf_counter() - t0
    parcels = _parcels_as_read(args)
    run_partitioned(parcels, screener, built.blueprint, PROJECT_TYPE, batch_out(args), args.partition_size,
                    dask=args.dask, workers=args.workers)
    return {"rows": _rows_written(batch_out(args)),
            "note": f"pieces read + Screener + feature sets {ready:.1f} s"}


def _parcels_as_read(args: argparse.Namespace) -> Any:
    """The parcels as `check-batch` reads them (lon/lat → the working CRS, validated by the reader)."""
    from cli.check_cmd import read_batch
    from runtime.settings import Settings

    return read_batch(parcels_file(args), Settings(data_dir=data_dir(args)), None, None)


def _rows_written(out: Path) -> int:
    manifest = json.loads((out / "manifest.json").read_text())
    return int(sum(p.get("rows", 0) for p in manifest["partitions"]))


def stage_spot(args: argparse.Namespace) -> dict[str, Any]:
    """Sampled parcels: the batch's areas per kind vs Screener.screen of each parcel alone."""
    from checks.engine import Screener
    from checks.rules import load_rules
    from layers.catalogue import load_catalogue

    parcels = _parcels_as_read(args)
    sample = _sample(parcels, args.sample, args.seed)
    pieces = _pieces_near(args, sample)
    blueprint = _built(args).blueprint
    blueprint.pieces, blueprint.status = pieces, "published"
    catalogue = load_catalogue()
    screener = Screener(blueprint, load_rules(None, catalogue), catalogue)
    return compare_sample(screener, sample, batch_out(args), f"on {len(pieces):,} pieces near them")


def _sample(parcels: Any, n: int, seed: int) -> Any:
    import numpy as np

    picked = np.random.default_rng(seed).choice(len(parcels), size=min(n, len(parcels)), replace=False)
    return parcels.iloc[np.sort(picked)]


def compare_sample(screener: Any, sample: Any, out: Path, where: str) -> dict[str, Any]:
    """The batch rows in ``out`` of the ``sample`` parcels vs ``screener.screen`` of each parcel alone:
    the same kinds and verdict, and the overlap areas per kind."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import pyarrow.dataset as ds

    from layers.model import ParcelSet

    rows = ds.dataset(sorted(out.glob("part-*.parquet")), format="parquet").to_table(
        columns=["parcel_id", "parcel_verdict", "kind", "overlap_area_m2"],
        filter=ds.field("parcel_id").isin(list(sample["parcel_id"]))).to_pandas()
    by_parcel = dict(tuple(rows.groupby("parcel_id", sort=False)))
    # the storage CRS is zone 39's; outside it the batch scales overlaps by the parcel's zone/working-plane
    # area ratio instead of reprojecting each overlap (checks.batch._own_zone), so those differ slightly
    lon = sample.geometry.centroid.to_crs(4490).x.to_numpy()
    home = np.floor((lon + 1.5) / 3).astype(int) == round(screener.crs.to_dict().get("lon_0", 117) / 3)
    worst = {True: 0.0, False: 0.0}
    relative, compared, bad = 0.0, 0, []
    for pid, geom, inside in zip(sample["parcel_id"], sample.geometry, home, strict=True):
        one = gpd.GeoDataFrame({"parcel_id": [pid]}, geometry=[geom], crs=sample.crs)
        single = screener.screen(ParcelSet(frame=one, source="spot"), PROJECT_TYPE)["parcels"][0]
        want = {h["kind"]: h["overlap_area_m2"] for h in single["conflicts"]}
        got_rows = by_parcel.get(pid, pd.DataFrame(columns=rows.columns))
        got = {k: a for k, a in zip(got_rows["kind"], got_rows["overlap_area_m2"], strict=True)
               if isinstance(k, str)}
        if set(got) != set(want) or set(got_rows["parcel_verdict"]) != {single["verdict"]}:
            bad.append(pid)
            continue
        for kind, area in want.items():
            worst[bool(inside)] = max(worst[bool(inside)], abs(got[kind] - area))
            relative = max(relative, abs(got[kind] - area) / max(area, 1e-9))
            compared += 1
    ok = not bad and worst[True] <= 1e-6
    return {"rows": compared,
            "note": f"{len(sample)} parcels ({int(home.sum())} in the storage zone), {compared} "
                    f"(parcel, kind) areas vs Screener.screen {where}: max |batch − single| "
                    f"{worst[True]:.1e} m² in the storage zone, {worst[False]:.1e} m² outside it (largest "
                    f"relative {relative:.1e}); kinds or verdict differ for {len(bad)} {bad[:5]} → "
                    f"{'OK' if ok else 'MISMATCH'} (goal 1e-6 m²)", "ok": ok}


def stage_region(args: argparse.Namespace) -> dict[str, Any]:
    """Batch throughput at the province's piece density without holding the province: the pieces of
    ``--region-parts`` consecutive build parts (bands of grid rows across all three zones) in one
    Screener, the parcels whose centroid lies ≥ 3 km inside the band, the partitioned batch in process
    (checks.batch_runner, as check-batch), then the spot check on the same Screener. A parcel missing a
    piece of a neighbouring band would be reported as outside the city (verdict error): counted."""
    import geopandas as gpd
    import pandas as pd
    import pyarrow.dataset as ds

    from bench.bench_batch_scale import run_partitioned
    from checks.batch_fast import feature_sets
    from checks.engine import Screener
    from checks.rules import load_rules
    from layers.catalogue import load_catalogue

    built = _built(args)
    middle = max(0, len(built.parts) // 2 - args.region_parts // 2)
    parts = built.parts[middle:middle + args.region_parts]
    t0, c0 = time.perf_counter(), time.process_time()
    pieces = gpd.GeoDataFrame(pd.concat([gpd.read_parquet(p) for p in parts], ignore_index=True),
                              geometry="geometry", crs=built.blueprint.crs)
    built.blueprint.pieces, built.blueprint.status = pieces, "published"
    catalogue = load_catalogue()
    screener = Screener(built.blueprint, load_rules(None, catalogue), catalogue)
    out = run_dir(args) / f"region-{args.parcels}"
    shutil.rmtree(out, ignore_errors=True)
    feature_sets(screener, out.with_name(out.name + "-sets"))
    ready, ready_cpu = time.perf_counter() - t0, time.process_time() - c0
    parcels = _parcels_as_read(args)
    y = parcels.geometry.centroid.y
    low, high = pieces.geometry.centroid.y.min() + 3000, pieces.geometry.centroid.y.max() - 3000
    inside = parcels[(y > low) & (y < high)].reset_index(drop=True)
    t1, c1 = time.perf_counter(), time.process_time()
    run_partitioned(inside, screener, built.blueprint, PROJECT_TYPE, out, args.partition_size)
    took, cpu = time.perf_counter() - t1, time.process_time() - c1
    verdicts = ds.dataset(sorted(out.glob("part-*.parquet")), format="parquet").to_table(
        columns=["parcel_id", "parcel_verdict"]).to_pandas().drop_duplicates("parcel_id")["parcel_verdict"]
    spot = compare_sample(screener, _sample(inside, args.sample, args.seed), out, "on the same Screener")
    return {"rows": _rows_written(out), "ok": spot["ok"],
            "note": f"parts {middle}–{middle + len(parts) - 1} of {len(built.parts)}: {len(pieces):,} "
                    f"pieces; "
                    f"pieces + Screener + feature sets {ready:.1f} s wall, {ready_cpu:.1f} s CPU; "
                    f"{len(inside):,} parcels inside the band screened in {took:.1f} s wall, {cpu:.1f} s CPU "
                    f"({len(inside) / took:,.0f} parcels/s wall, {cpu / len(inside) * 1e3:.2f} ms CPU a "
                    f"parcel); verdicts {verdicts.value_counts().to_dict()}; spot: {spot['note']}"}


def _pieces_near(args: argparse.Namespace, sample: Any) -> Any:
    """Every piece whose box meets a sampled parcel's box: from the store (by box) or from the parts."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import shapely

    if args.via == "store":
        from runtime.settings import Settings
        from runtime.stores import open_stores

        stores = open_stores(Settings(database_url=f"{PG_SERVER}/{database(args)}", data_dir=data_dir(args)))
        try:
            frames = [stores.blueprints.pieces(VERSION, bbox=tuple(b))
                      for b in sample.geometry.bounds.to_numpy()]
        finally:
            stores.close()
    else:
        boxes = shapely.box(*sample.geometry.bounds.to_numpy().T)
        frames = []
        for path in _built(args).parts:
            part = gpd.read_parquet(path)
            frames.append(part.iloc[np.unique(part.sindex.query(boxes, predicate="intersects")[1])])
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True).drop_duplicates("piece_id")
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=sample.crs).sort_values("piece_id").reset_index(
        drop=True)


STAGES = {"build": stage_build, "store": stage_store, "parcels": stage_parcels,
          "parts-batch": stage_parts_batch, "spot": stage_spot, "region": stage_region}


# --- the parent: run a stage, watch its process tree -----------------------------------------------

def _proc(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return ""


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc/*/stat ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc(int(entry.name), "stat")
            if stat:
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kb(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _available_gb() -> float:
    return _kb(Path("/proc/meminfo").read_text(), "MemAvailable:") / 1024**2


class Watch:
    """Samples a stage's process tree each second: VmHWM per process, the least MemAvailable seen, and the
    CPU of the PostgreSQL backends serving ``database``; kills the stage's process group when memory runs
    short."""

    def __init__(self, pid: int, min_gb: float, database: str | None) -> None:
        self.pid, self.min_gb, self.database = pid, min_gb, database
        self.hwm_kb: dict[int, int] = {}
        self.pg_ticks: dict[int, int] = {}
        self.least_gb = _available_gb()
        self.aborted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for pid in _tree(self.pid):
                hwm = _kb(_proc(pid, "status"), "VmHWM:")
                self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), hwm)
            if self.database:
                self._postgres()
            self.least_gb = min(self.least_gb, _available_gb())
            if self.least_gb < self.min_gb and not self.aborted:
                self.aborted = True
                print(f"  !! MemAvailable {self.least_gb:.1f} GB < {self.min_gb} GB: stopping the stage",
                      flush=True)
                os.killpg(self.pid, signal.SIGTERM)
                time.sleep(5)
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _postgres(self) -> None:
        tag = f" {self.database} ".encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"postgres:") and tag in cmd:
                    fields = _proc(int(entry.name), "stat").rsplit(")", 1)[-1].split()
                    if len(fields) > 12:
                        self.pg_ticks[int(entry.name)] = int(fields[11]) + int(fields[12])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def pg_cpu(self) -> float:
        return sum(self.pg_ticks.values()) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def run_stage(label: str, cmd: list[str], args: argparse.Namespace, log: Path,
              env: dict[str, str] | None = None, pg: bool = False) -> dict[str, Any]:
    """Run ``cmd`` in its own process group, watched; its last stdout line is JSON."""
    before, c0, t0 = os.getloadavg()[0], _children_cpu(), time.perf_counter()
    with log.open("w") as err, log.with_suffix(".out").open("w") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, start_new_session=True,
                                 env=env or {**os.environ, "PYTHONPATH": str(ROOT)})
        watch = Watch(child.pid, args.min_available_gb, database(args) if pg else None)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        watch.stop()
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    # wait4's ru_maxrss is the largest of the child and the descendants it reaped: only a fallback
    main_mb = (watch.hwm_kb.get(child.pid) or usage.ru_maxrss) / 1024
    others = sorted((kb / 1024 for pid, kb in watch.hwm_kb.items() if pid != child.pid and kb > 100 * 1024),
                    reverse=True)
    text = log.with_suffix(".out").read_text().strip()
    try:  # the CLI prints one JSON document; a stage of this script one line of JSON last
        result = json.loads(text) if text.startswith("{") else json.loads(text.splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        result = {}
    if child.returncode != 0:
        tail = log.read_text().strip().splitlines()
        result = {"error": f"exit {child.returncode}: {tail[-1] if tail else ''}"[:300]}
    if label == "batch":  # what `check-batch` prints on stderr: feature sets, the partitions' bar
        result["note"] = (result.get("note", "") + " " + _batch_notes(log.read_text())).strip()
    row = {"stage": label, "wall_s": wall, "cpu_s": cpu, "peak_mb": main_mb, "others_mb": others,
           "pg_cpu_s": watch.pg_cpu() if pg else None, "least_available_gb": watch.least_gb,
           "load": f"{before:.2f}→{os.getloadavg()[0]:.2f}", "aborted": watch.aborted, **result}
    _print_row(row)
    return row


def _batch_notes(text: str) -> str:
    """The feature-set time and the final parcels/s and elapsed time of check-batch's progress bar."""
    import re

    sets = re.findall(r"feature sets ready in ([\d.]+) s", text)
    bar = re.findall(r"(\d+)/(\d+)\s+([\d,]+) parcels/s\s+(\d+:\d\d:\d\d)", text)
    out = [f"feature sets {sets[-1]} s" if sets else ""]
    if bar:
        done, total, rate, took = bar[-1]
        out.append(f"screening {done}/{total} partitions in {took} ({rate} parcels/s)")
    return "; ".join(o for o in out if o)


def _print_row(row: dict[str, Any]) -> None:
    others = "+".join(f"{m:.0f}" for m in row["others_mb"]) or "-"
    pg = f" pg {row['pg_cpu_s']:.1f}" if row.get("pg_cpu_s") is not None else ""
    what = row.get("error") or row.get("note", "")
    rows = row.get("rows", "")
    print(f"{row['stage']:>9} | {row['wall_s']:8.1f} {row['cpu_s']:8.1f}{pg} | {row['peak_mb']:7.0f} "
          f"{others:>13} | {rows!s:>10} | {row['load']} | avail ≥ {row['least_available_gb']:.1f} GB "
          f"| {what}",
          flush=True)


def _self(stage: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--patches", str(args.patches),
           "--parcels", str(args.parcels), "--data", str(args.data), "--seed", str(args.seed),
           "--tolerance", str(args.tolerance), "--via", args.via, "--sample", str(args.sample),
           "--partition-size", str(args.partition_size), "--workers", str(args.workers),
           "--province", str(args.province), "--region-parts", str(args.region_parts)]
    return cmd + (["--dask"] if args.dask else [])


def _batch_cmd(args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "cli.main", "check-batch", str(parcels_file(args)), "--out",
           str(batch_out(args)), "-t", PROJECT_TYPE, "--partition-size", str(args.partition_size)]
    return cmd + (["--dask", "--workers", str(args.workers)] if args.dask else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=300_000, help="farmland patches (N)")
    parser.add_argument("--parcels", type=int, default=10_000, help="parcels screened (M)")
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data-e2e"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--via", choices=["store", "parts"], default="store",
                        help="store: PostGIS + `blueprint check-batch` (default); parts: Screener from the "
                             "build's parts, no store")
    parser.add_argument("--dask", action="store_true", help="the batch on a LocalCluster (--workers)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-size", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=200, help="parcels checked against Screener.screen")
    parser.add_argument("--stages", default="build,store,parcels,batch,spot",
                        help="which to run (generate always runs, cached); build/store/parcels reuse their "
                             "output when skipped; `region` (not by default) screens a band of the province")
    parser.add_argument("--region-parts", type=int, default=5,
                        help="region stage: consecutive build parts (bands) whose pieces are screened")
    parser.add_argument("--min-available-gb", type=float, default=3.0)
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--province", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(STAGES[args.stage](args)), flush=True)
        return 0

    run_dir(args).mkdir(parents=True, exist_ok=True)
    logs = run_dir(args) / "logs"
    logs.mkdir(exist_ok=True)
    print(f"province e2e: {args.patches:,} patches × {args.parcels:,} parcels, via {args.via}"
          f"{', dask ' + str(args.workers) + ' workers' if args.dask else ', in process'}; "
          f"MemAvailable {_available_gb():.1f} GB; load {os.getloadavg()}", flush=True)
    print(f"{'stage':>9} | {'wall s':>8} {'CPU s':>8} | {'peak MB':>7} {'others MB':>13} | {'rows':>10} | "
          "load avg | memory | notes", flush=True)
    before, t0 = os.getloadavg()[0], time.perf_counter()
    c0 = _children_cpu()
    args.province, gen_s = _generate(args.patches, Path(args.data), args.seed)
    _print_row({"stage": "generate", "wall_s": time.perf_counter() - t0, "cpu_s": _children_cpu() - c0,
                "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "others_mb": [],
                "least_available_gb": _available_gb(), "load": f"{before:.2f}→{os.getloadavg()[0]:.2f}",
                "note": "cached" if not gen_s else "bench.province"})
    wanted = args.stages.split(",")
    steps: list[tuple[str, list[str], dict[str, str] | None, bool]] = [
        ("build", _self("build", args), None, False),
        ("store", _self("store", args), None, True),
        ("parcels", _self("parcels", args), None, False)]
    if args.via == "store":
        steps.append(("batch", _batch_cmd(args), service_env(args), True))
    else:
        steps.append(("batch", _self("parts-batch", args), None, False))
    steps.append(("spot", _self("spot", args), None, args.via == "store"))
    steps.append(("region", _self("region", args), None, False))
    failed = False
    for label, cmd, env, pg in steps:
        if label not in wanted or (label == "store" and args.via == "parts"):
            continue
        if failed:
            print(f"{label:>9} | skipped: an earlier stage failed", flush=True)
            continue
        if label == "batch":
            shutil.rmtree(batch_out(args), ignore_errors=True)
            shutil.rmtree(built_file(args).parent / "screening", ignore_errors=True)  # parsed once per run
        row = run_stage(label, cmd, args, logs / f"{label}.log", env=env, pg=pg)
        failed = bool(row.get("error") or row["aborted"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
