"""bench.bench_province: build a synthetic province in memory vs out of core vs on a dask LocalCluster.

    flock /tmp/heavy.lock python bench/bench_province.py --sizes 1000000 [--methods memory,ooc,dask]

For each size the province is generated once (bench.province, cached under --data), then each method
runs in a fresh interpreter: ``memory`` = load all parts + ``build_blueprint`` (2 threads), ``ooc`` =
``build_partitioned`` reading the parts (2 threads), ``dask`` = ``build_partitioned`` on a LocalCluster of
2 worker processes (1 thread each). Wall, CPU (the run's process plus its worker processes) and peak RSS
(VmHWM of the run's process and of each dask worker, read from /proc before they exit) are printed with
the 1-minute load average before→after each row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python bench/bench_province.py
    sys.path.insert(0, str(ROOT))


def vmhwm_mb() -> float:
    """This process's peak resident set (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def build_parts(data: Path, out: Path, runner: Any, catalogue: Any, precedence: Any, tolerance: float,
                version: str = "bench") -> Any:
    """``build_partitioned`` over the province's GeoParquet parts into ``out`` (the ooc and dask rows)."""
    from bench.province import layer_parts
    from blueprint.partitioned import Source, build_partitioned

    sources = [Source(lay, tuple(parts)) for lay, parts in layer_parts(data)]
    return build_partitioned(sources, out, runner=runner, catalogue=catalogue, precedence=precedence,
                             tolerance_m=tolerance, version=version)


def run_one(method: str, data: Path, out: Path, tolerance: float) -> dict[str, Any]:
    from bench.province import load_layers
    from blueprint.precedence import load_precedence
    from blueprint.tasks import client_runner, local_runner
    from layers.catalogue import load_catalogue

    catalogue = load_catalogue()
    precedence = load_precedence(None, catalogue)
    t0, c0 = time.perf_counter(), _cpu()
    workers_mb: list[float] = []
    if method == "memory":
        from blueprint.merge import build_blueprint

        layers, boundary = load_layers(data)
        bp = build_blueprint(
            layers,
            catalogue=catalogue,
            precedence=precedence,
            tolerance_m=tolerance,
            version="bench",
            boundary=boundary,
            workers=2,
        )
        pieces, conflicts = len(bp.pieces), len(bp.conflicts)
    else:
        if method == "ooc":
            built = build_parts(data, out, local_runner(2), catalogue, precedence, tolerance)
        else:
            from dask.distributed import Client, LocalCluster

            with (
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0
                ) as cluster,
                Client(cluster) as client,  # type: ignore[no-untyped-call]
            ):
                built = build_parts(data, out, client_runner(client), catalogue, precedence, tolerance)
                workers_mb = list(client.run(vmhwm_mb).values())
        pieces, conflicts = built.piece_count, len(built.blueprint.conflicts)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": _cpu() - c0,
        "peak_mb": vmhwm_mb(),
        "workers_mb": workers_mb,
        "pieces": pieces,
        "conflicts": conflicts,
    }


def _child(method: str, data: Path, out: Path, tolerance: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        method,
        "--data",
        str(data),
        "--out",
        str(out),
        "--tolerance",
        str(tolerance),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()
        return {"error": tail[-1] if tail else f"exit {done.returncode}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _generate(n: int, root: Path, seed: int) -> tuple[Path, float]:
    data = root / f"province-{n}-seed{seed}"
    if (data / "province.json").exists():
        return data, 0.0
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "bench.province",
        "--patches",
        str(n),
        "--out",
        str(data),
        "--seed",
        str(seed),
    ]
    subprocess.run(
        cmd, check=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    return data, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="farmland patch counts, comma-separated")
    parser.add_argument("--methods", default="memory,ooc,dask")
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench-province"))
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--one", choices=["memory", "ooc", "dask"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.out, args.tolerance)))
        return 0
    print(
        f"{'patches':>9} {'method':>7} | {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'workers MB':>14} | "
        f"{'pieces':>9} {'conflicts':>9} | load avg",
        flush=True,
    )
    for n in [int(s) for s in args.sizes.split(",") if s]:
        data, gen_s = _generate(n, args.data, args.seed)
        if gen_s:
            print(f"{n:>9} generated in {gen_s:.1f} s", flush=True)
        for method in args.methods.split(","):
            out = args.data / f"out-{n}-{method}"
            before = os.getloadavg()[0]
            res = _child(method, data, out, args.tolerance)
            shutil.rmtree(out, ignore_errors=True)
            load = f"{before:.2f}→{os.getloadavg()[0]:.2f}"
            if "error" in res:
                print(f"{n:>9} {method:>7} | failed: {res['error']} | {load}", flush=True)
                continue
            workers = "+".join(f"{w:.0f}" for w in res["workers_mb"]) or "-"
            print(
                f"{n:>9} {method:>7} | {res['seconds']:>7.1f} {res['cpu_seconds']:>7.1f} "
                f"{res['peak_mb']:>8.0f} "
                f"{workers:>14} | {res['pieces']:>9} {res['conflicts']:>9} | {load}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
