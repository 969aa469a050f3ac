"""bench.bench_tile_archive: the MVT archive build at publish (and the street-zoom wait after a restart),
this tree against another checkout of the repository, in the same run.

    .venv/bin/python -m bench.bench_tile_archive --direct 1000000 --baseline-tree /path/to/checkout-of-main

The city (``bench.bench_check.direct_blueprint``) is made once and cached as GeoParquet under ``--cache``;
each tree then runs in a fresh subprocess of its own (so ``ru_maxrss`` is that build's peak), importing its
own ``viewer``: layer indexes (the dissolves), then ``build_version_tiles`` at zooms 6–14, then — what a
restarted server does before it can tile street zooms — this tree reads the saved layer parts
(``viewer.archive.load_parts``), a tree without them dissolves every layer again. The 1-minute load
average is printed before → after each step.

The goal is an archive build no slower than the blueprint build, so the same run also builds a blueprint
(``blueprint.merge.build_blueprint`` on ``bench.synthetic.scaled_layers``, as bench_build does) of about the
same number of pieces (``--blueprint-farmland``, default N: 10⁶ farmland patches give ≈ 1.07 × 10⁶ pieces)
in a subprocess of its own, and prints its wall and CPU seconds beside the archive's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_city(n: int, cache: Path) -> Path:
    folder = cache / f"city{n}-noded"  # edge strips noded (bench_check._edge_strips)
    if not (folder / "p.parquet").exists():
        from bench.bench_check import direct_blueprint

        started = time.perf_counter()
        bp = direct_blueprint(n)
        folder.mkdir(parents=True, exist_ok=True)
        bp.pieces.to_parquet(folder / "p.parquet")
        bp.conflicts.to_parquet(folder / "c.parquet")
        print(f"city: {len(bp.pieces)} pieces made in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


def child(folder: Path, out: Path) -> None:
    """One tree's build (run in a subprocess whose sys.path starts with that tree)."""
    import geopandas as gpd

    from bench.bench_tiles import BenchSource, archive_stats
    from layers.catalogue import load_catalogue
    from viewer import archive
    from viewer.tiles import TileService

    source = BenchSource(gpd.read_parquet(folder / "p.parquet"), gpd.read_parquet(folder / "c.parquet"))
    groups = {k.key: k.group for k in load_catalogue().values()}
    load = lambda: round(os.getloadavg()[0], 2)  # noqa: E731
    cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # noqa: E731 — user + system seconds
    row: dict[str, object] = {"pieces": len(source.pieces("v1")), "load0": load()}
    service = TileService(source, groups, tile_cache=1)
    started, cpu0 = time.perf_counter(), cpu()
    if hasattr(service, "indexes"):
        service.indexes("v1", workers=getattr(archive, "BUILD_WORKERS", 1))
    else:
        for name in service.layer_names():
            service.index("v1", name)
    row["indexes_s"], row["load1"] = round(time.perf_counter() - started, 1), load()
    started, cpu1 = time.perf_counter(), cpu()
    path = archive.build_version_tiles(source, "v1", out, groups=groups, service=service)
    row["tiles_s"], row["load2"] = round(time.perf_counter() - started, 1), load()
    row["cpu_indexes_s"], row["cpu_tiles_s"] = round(cpu1 - cpu0, 1), round(cpu() - cpu1, 1)
    row.update(archive_stats(path))
    started = time.perf_counter()
    if hasattr(archive, "load_parts"):
        fresh = TileService(source, groups, tile_cache=1)
        fresh.preload("v1", archive.load_parts(archive.parts_path(out, "v1")))
        row["restart"] = "read saved parts"
    else:
        fresh = TileService(source, groups, tile_cache=1)
        for name in fresh.layer_names():
            fresh.index("v1", name)
        row["restart"] = "dissolve again"
    row["restart_s"], row["load3"] = round(time.perf_counter() - started, 1), load()
    row["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("ROW " + json.dumps(row), flush=True)


def blueprint_child(farmland: int) -> None:
    """The blueprint build of about the same pieces (run in a subprocess: its own peak memory and CPU)."""
    from bench.bench_build import run_blueprint

    load0 = round(os.getloadavg()[0], 2)
    row = run_blueprint(farmland, seed=1, tolerance=0.5, workers=None)
    print("ROW " + json.dumps({**row, "load0": load0, "load1": round(os.getloadavg()[0], 2)}), flush=True)


def run_blueprint_build(farmland: int) -> dict[str, object]:
    code = ("import importlib.util, sys; "
            "spec = importlib.util.spec_from_file_location('bench_tile_archive_child', sys.argv[1]); "
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); "
            "mod.blueprint_child(int(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, __file__, str(farmland)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = [line[4:] for line in proc.stdout.splitlines() if line.startswith("ROW ")]
    if proc.returncode != 0 or not rows:
        raise SystemExit(f"blueprint build failed\n{proc.stderr[-3000:]}")
    return json.loads(rows[-1])


def run_tree(tree: Path, folder: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = Path(tempfile.mkdtemp(prefix="bench_archive_"))
    # this file's child(), loaded by path: the other tree need not have this script, only its viewer
    code = ("import importlib.util, sys; from pathlib import Path; "
            "spec = importlib.util.spec_from_file_location('bench_tile_archive_child', sys.argv[1]); "
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); "
            "mod.child(Path(sys.argv[2]), Path(sys.argv[3]))")
    proc = subprocess.run([sys.executable, "-c", code, __file__, str(folder), str(out)], env=env,
                          capture_output=True, text=True, cwd=tree)
    rows = [line[4:] for line in proc.stdout.splitlines() if line.startswith("ROW ")]
    if proc.returncode != 0 or not rows:
        raise SystemExit(f"{tree}: failed\n{proc.stderr[-3000:]}")
    return json.loads(rows[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--direct", type=int, default=100_000,
                    help="≈ N pieces (bench.bench_check.direct_blueprint)")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout to compare with (e.g. main)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench_tile_archive")
    ap.add_argument("--blueprint-farmland", type=int, default=None,
                    help="farmland patches of the blueprint build printed beside (default: N; 0 = skip)")
    args = ap.parse_args(argv)
    folder = make_city(args.direct, args.cache)
    trees = [("this tree", ROOT)]
    if args.baseline_tree:
        trees.append(("baseline", args.baseline_tree.resolve()))
    print("| tree | pieces | indexes s (CPU) | tiles s (CPU) | archive s (CPU) | tiles | MB "
          "| largest gz / raw kB | restart | peak MB | load |", flush=True)
    farmland = args.direct if args.blueprint_farmland is None else args.blueprint_farmland
    if farmland:
        bp = run_blueprint_build(farmland)
        print(f"| blueprint build ({farmland} farmland patches) | {bp['pieces']} | – | – | "
              f"**{float(bp['seconds']):.1f} ({float(bp['cpu_seconds']):.1f})** | – | – | – | – | "
              f"{float(bp['peak_mb']):.0f} | {bp['load0']}→{bp['load1']} |", flush=True)
    for label, tree in trees:
        r = run_tree(tree, folder)
        total, total_cpu = float(r["indexes_s"]) + float(r["tiles_s"]), r["cpu_indexes_s"] + r["cpu_tiles_s"]
        print(f"| {label} | {r['pieces']} | {r['indexes_s']} ({r['cpu_indexes_s']}) | {r['tiles_s']} "
              f"({r['cpu_tiles_s']}) | {total:.1f} ({total_cpu:.1f}) | {r['tiles']} | "
              f"{int(r['size']) / 1e6:.1f} | "
              f"{int(r['largest_gzip']) / 1e3:.0f} / {int(r['largest_raw']) / 1e3:.0f} | {r['restart']} "
              f"{r['restart_s']} s | {r['peak_mb']} | {r['load0']}→{r['load1']}→{r['load2']}→{r['load3']} |",
              flush=True)


if __name__ == "__main__":
    main()
