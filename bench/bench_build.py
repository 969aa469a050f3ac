"""bench.bench_build: build_blueprint vs a plain geopandas.overlay chain on the synthetic city."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python bench/bench_build.py
    sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_blueprint(n: int, seed: int, tolerance: float, workers: int | None) -> dict[str, object]:
    from bench.synthetic import scaled_layers
    from blueprint.merge import build_blueprint
    from blueprint.precedence import load_precedence
    from layers.catalogue import load_catalogue

    layers, boundary = scaled_layers(n, seed=seed)
    catalogue = load_catalogue()
    precedence = load_precedence(None, catalogue)
    base_mb = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    bp = build_blueprint(layers, catalogue=catalogue, precedence=precedence, tolerance_m=tolerance,
                         version="bench", boundary=boundary, workers=workers)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "peak_mb": _peak_mb(), "input_mb": base_mb, "pieces": len(bp.pieces),
            "conflicts": len(bp.conflicts), "absorbed": len(bp.absorbed), "cells": bp.meta["cells"]}


def run_overlay(n: int, seed: int) -> dict[str, object]:
    """The naive baseline: union the line layers, then the zones, then the overlays, clip to the city."""
    import geopandas as gpd

    from bench.synthetic import scaled_layers

    layers, boundary = scaled_layers(n, seed=seed)
    order = ["ecological_redline", "permanent_farmland", "urban_boundary",
             "ecological_space", "agricultural_space", "urban_space", "geohazard_zone"]
    frames = {lay.kind: lay.frame.rename(columns={"feature_id": f"{lay.kind}_id"}) for lay in layers}
    base_mb = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    merged = frames[order[0]]
    for kind in order[1:]:
        merged = gpd.overlay(merged, frames[kind], how="union", keep_geom_type=True)
    city = boundary.frame.rename(columns={"feature_id": "city_id"})
    merged = gpd.overlay(city, merged, how="union", keep_geom_type=True)  # the unplanned rest too
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "peak_mb": _peak_mb(), "input_mb": base_mb, "pieces": len(merged)}


def _child(method: str, n: int, args: argparse.Namespace) -> dict[str, object]:
    """One run in a fresh interpreter, so peak memory is that run's alone."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", method, "--sizes", str(n),
           "--seed", str(args.seed), "--tolerance", str(args.tolerance)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000", help="farmland patch counts, comma-separated")
    parser.add_argument("--baseline-max", type=int, default=2000,
                        help="largest size the overlay baseline is run at (it takes minutes above)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=None, help="merge threads (default: up to 2)")
    parser.add_argument("--one", choices=["blueprint", "overlay"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.one:
        n = sizes[0]
        res = (run_blueprint(n, args.seed, args.tolerance, args.workers) if args.one == "blueprint"
               else run_overlay(n, args.seed))
        print(json.dumps(res))
        return 0
    print(f"{'farmland':>9} | {'blueprint s':>11} {'cpu s':>7} {'peak MB':>8} {'pieces':>8} "
          f"{'conflicts':>9} | {'overlay s':>9} {'peak MB':>8} {'pieces':>8} | speed-up | load avg")
    for n in sizes:
        load_before = os.getloadavg()[0]  # the box is shared: wall times mean little without the load
        bp = _child("blueprint", n, args)
        ov = _child("overlay", n, args) if n <= args.baseline_max else None
        if "error" in bp:
            print(f"{n:>9} | blueprint failed: {bp['error']}")
            continue
        left = (f"{n:>9} | {bp['seconds']:>11.2f} {bp['cpu_seconds']:>7.1f} {bp['peak_mb']:>8.0f} "
                f"{bp['pieces']:>8} {bp['conflicts']:>9} | ")
        if ov is None:
            right = f"{'skipped (> --baseline-max ' + str(args.baseline_max) + ')':>28} |"
        elif "error" in ov:
            right = f"overlay failed: {ov['error']} |"
        else:
            speed = float(ov["seconds"]) / float(bp["seconds"])  # type: ignore[arg-type]
            right = f"{ov['seconds']:>9.2f} {ov['peak_mb']:>8.0f} {ov['pieces']:>8} | {speed:>6.1f}×"
        load = f" {load_before:.2f}→{os.getloadavg()[0]:.2f}"
        print(left + right + load, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
