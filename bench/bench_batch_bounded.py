"""bench.bench_batch_bounded: `check-batch --whole` vs `--bounded` on a stored province, same parcels.

    flock /tmp/heavy.lock python bench/bench_batch_bounded.py --database-url postgresql://…/bench_e2e_N \\
        --parcels PARCELS.parquet --out /work/bench-data-bounded [--modes whole,bounded] [--partition-size N]

Each mode is one `blueprint check-batch PARCELS --out OUT/MODE -t residential` under `/usr/bin/time -v` (a
fresh process; wall, user + sys CPU and max RSS of the CLI; PostgreSQL's backend is not its child, so its
CPU is not counted), with the 1-minute load average before and after. The data dir is OUT/datadir (the
whole run keeps the version's feature sets there; copy them in first to measure a second run). Then the
tables are compared row for row (areas to 1e-6 m²).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _time_v(stderr: str) -> dict[str, float]:
    """Wall, CPU and max RSS from /usr/bin/time -v's report."""
    def grab(label: str) -> str:
        found = re.search(rf"{re.escape(label)}: (.+)", stderr)
        return found.group(1).strip() if found else "0"

    clock = [float(v) for v in grab("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(v * 60 ** i for i, v in enumerate(reversed(clock)))
    return {"wall_s": round(wall, 1), "cpu_s": round(float(grab("User time (seconds)"))
                                                      + float(grab("System time (seconds)")), 1),
            "max_rss_mb": round(int(grab("Maximum resident set size (kbytes)")) / 1024)}


def run(mode: str, args: argparse.Namespace) -> dict[str, object]:
    out = Path(args.out) / f"{mode}-{args.partition_size}"
    env = os.environ | {"PYTHONPATH": str(ROOT), "BLUEPRINT_DATA_DIR": str(Path(args.out) / "datadir"),
                        "BLUEPRINT_DATABASE_URL": args.database_url}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "cli.main", "check-batch", args.parcels, "--out",
           str(out), "-t", "residential", "--partition-size", str(args.partition_size), f"--{mode}",
           "--restart"]
    before = os.getloadavg()[0]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    after = os.getloadavg()[0]
    if done.returncode != 0:
        raise SystemExit(f"{mode}: exit {done.returncode}\n{done.stderr[-3000:]}")
    notes = [line for line in done.stderr.splitlines() if "bounded:" in line or "feature sets" in line]
    return {"mode": mode, **_time_v(done.stderr), "load": f"{before:.2f}→{after:.2f}",
            "rows": json.loads(done.stdout)["rows"], "notes": notes, "out": str(out)}


def compare(a: str, b: str) -> str:
    import numpy as np
    from pandas.testing import assert_frame_equal

    from checks.batch_store import read_results

    left, right = read_results(Path(a)), read_results(Path(b))
    assert_frame_equal(left, right, check_exact=False, rtol=0, atol=1e-6)
    worst = max(float(np.nanmax(np.abs(left[c].to_numpy() - right[c].to_numpy()), initial=0.0))
                for c in ("area_m2", "overlap_area_m2", "overlap_ellipsoidal_area_m2", "outside_m2"))
    return f"{len(left):,} rows equal (largest area difference {worst:.1e} m²)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--parcels", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--modes", default="whole,bounded")
    parser.add_argument("--partition-size", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=590.0)
    args = parser.parse_args()
    results = []
    for mode in args.modes.split(","):
        started = time.strftime("%H:%M:%S")
        result = run(mode, args)
        results.append(result)
        print(json.dumps({"started": started, **result}, ensure_ascii=False), flush=True)
    if len(results) == 2:
        print(compare(str(results[0]["out"]), str(results[1]["out"])), flush=True)


if __name__ == "__main__":
    main()
