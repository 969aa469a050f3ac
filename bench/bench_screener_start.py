"""bench.bench_screener_start: how soon a new worker process can screen — Screener built from the pieces
in the database vs read from its file in the data dir (runtime.screener_files).

Stores a synthetic published blueprint of ``--pieces`` pieces in a fresh SpatiaLite database, then starts
fresh Python processes that open the services and ask for the version's Screener, ``--runs`` times each:
"build" (no file: pieces loaded, STRtree built, file written) and "file" (file read). Prints the seconds
and the load average.

    .venv/bin/python -m bench.bench_screener_start --pieces 50000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys, time
t0 = time.perf_counter()
from runtime.services import Services
from runtime.settings import Settings
t1 = time.perf_counter()
services = Services.open(Settings(_env_file=None, database_url=sys.argv[1], data_dir=sys.argv[2]))
t2 = time.perf_counter()
services.published.screener(sys.argv[3])
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
services.close()
"""


def store(url: str, data_dir: Path, pieces: int) -> str:
    """A published synthetic blueprint in a fresh database; returns its version."""
    import geopandas as gpd

    from bench.bench_check import direct_blueprint
    from blueprint.store import CONFLICT_COLUMNS
    from runtime.services import Services
    from runtime.settings import Settings

    settings = Settings(_env_file=None, database_url=url, data_dir=data_dir)  # type: ignore[call-arg]
    services = Services.open(settings)
    try:
        made = direct_blueprint(pieces)
        none = gpd.GeoDataFrame({c: [] for c in CONFLICT_COLUMNS}, geometry=[], crs=made.crs)
        blueprint = dataclasses.replace(made, status="draft", conflicts=none)
        services.stores.blueprints.save_draft(blueprint)
        services.stores.blueprints.publish(blueprint.version, "bench")
        return blueprint.version
    finally:
        services.close()


def child(url: str, data_dir: Path, version: str) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(data_dir), version], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-screener-") as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'bench.sqlite'}"
        t0 = time.perf_counter()
        version = store(url, data_dir, args.pieces)
        print(f"setup: {args.pieces:,} pieces stored and published in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        folder = data_dir / "screeners"
        rows: dict[str, list[float]] = {"build": [], "file": []}
        for _ in range(args.runs):
            shutil.rmtree(folder, ignore_errors=True)
            rows["build"].append(child(url, data_dir, version)[2])  # no file: built (and the file written)
            rows["file"].append(child(url, data_dir, version)[2])  # the file written by the run before
        size = sum(f.stat().st_size for f in folder.glob("*.screener"))
    report = {"pieces": args.pieces, "screener_file_mb": round(size / 1e6, 1),
              "first_screener_s": {k: round(statistics.median(v), 3) for k, v in rows.items()},
              "runs": {k: [round(x, 3) for x in v] for k, v in rows.items()},
              "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}
    print(f"first Screener in a new process ({args.pieces:,} pieces, median of {args.runs}): built from the "
          f"database {report['first_screener_s']['build']} s, read from its file "
          f"{report['first_screener_s']['file']} s ({report['screener_file_mb']} MB); load average "
          f"{report['load_average']} on {os.cpu_count()} CPUs")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
