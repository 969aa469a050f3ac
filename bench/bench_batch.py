"""bench.bench_batch: batch screening throughput vs geopandas.overlay on the same parcels and pieces.

Usage:  .venv/bin/python -m bench.bench_batch [--parcels 100000] [--pieces 1000000] [--dask] [--workers 2]

The blueprint is bench.bench_check.direct_blueprint (≈ --pieces pieces, see there). Both sides get the
same parcels and the same pieces. The baseline is `geopandas.overlay(parcels, pieces, how="intersection")`
plus the plane area of each intersection row: it stops at the pairwise overlap polygons and their plane
areas, so it is generous to the baseline — `checks.batch.screen_batch` also computes ellipsoidal areas,
sums per parcel × effective kind, applies the rules, verdicts and source feature ids, and writes the
result table (`checks.batch.COLUMNS`). Target: ≥ 10× the overlay's throughput.

Printed, in one run: the per-blueprint preparation of the batch path (`checks.batch_fast.batch_index`:
the pieces' rings as flat arrays; built once per blueprint version and process, like the Screener's
STRtree), the batch wall and CPU time, the overlay's, and the ratio with and without the preparation.
"""

from __future__ import annotations

import argparse
import os
import time

import geopandas as gpd

from bench.bench_check import WORK, direct_blueprint, query_parcels
from checks.batch import screen_batch
from checks.batch_fast import batch_index
from checks.engine import Screener
from checks.rules import load_rules
from layers.catalogue import load_catalogue


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--pieces", type=int, default=1_000_000)
    parser.add_argument("--dask", action="store_true", help="also time checks.distributed (LocalCluster)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-overlay", action="store_true", help="skip the geopandas.overlay baseline")
    args = parser.parse_args(argv)

    print(f"bench_batch: {args.parcels:,} parcels × ≈{args.pieces:,} pieces; target ≥ 10× geopandas.overlay"
          f"  (load average {os.getloadavg()[0]:.2f})")
    t0 = time.perf_counter()
    blueprint = direct_blueprint(args.pieces)
    print(f"direct blueprint: {len(blueprint.pieces):,} pieces in {time.perf_counter() - t0:.1f} s")
    parcels = gpd.GeoDataFrame({"parcel_id": [f"B{i}" for i in range(args.parcels)]},
                               geometry=query_parcels(args.parcels, seed=11, margin=0.0), crs=WORK)
    catalogue = load_catalogue()
    screener = Screener(blueprint, load_rules(None, catalogue), catalogue)
    t0 = time.perf_counter()
    batch_index(screener)
    prep = time.perf_counter() - t0
    print(f"  per-blueprint preparation   {prep:8.1f} s  (batch_index: flat piece rings, once per version)")

    t0, c0 = time.perf_counter(), time.process_time()
    table = screen_batch(parcels, screener, "industrial")
    ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    verdicts = table.drop_duplicates("parcel_id")["parcel_verdict"].value_counts().to_dict()
    print(f"  checks.batch.screen_batch   {ours:8.1f} s  {args.parcels / ours:10,.0f} parcels/s  "
          f"CPU {ours_cpu:.1f} s  ({len(table):,} rows; verdicts {verdicts})")

    if args.dask:
        from checks.distributed import dask_client, screen_distributed

        with dask_client(None, n_workers=args.workers) as client:
            t0 = time.perf_counter()
            distributed = screen_distributed(parcels, screener, "industrial", client=client,
                                             partitions=4 * args.workers)
            took = time.perf_counter() - t0
        same = distributed.drop(columns="geometry").equals(table.drop(columns="geometry"))
        print(f"  checks.distributed ({args.workers} workers) {took:8.1f} s  "
              f"{args.parcels / took:10,.0f} parcels/s  (identical to in-process: {same})")

    if not args.no_overlay:
        pieces = blueprint.pieces[["piece_id", "kinds", "geometry"]]
        t0, c0 = time.perf_counter(), time.process_time()
        overlay = gpd.overlay(parcels, pieces, how="intersection", keep_geom_type=True)
        overlay["area_m2"] = overlay.geometry.area
        base, base_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"  geopandas.overlay baseline  {base:8.1f} s  {args.parcels / base:10,.0f} parcels/s  "
              f"CPU {base_cpu:.1f} s  ({len(overlay):,} intersection rows)")
        print(f"  speed-up {base / ours:.1f}× wall, {base_cpu / ours_cpu:.1f}× CPU; "
              f"{base / (ours + prep):.1f}× wall counting the preparation  (target ≥ 10×)"
              f"  (load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
