"""What planning conditions and regional assessments add to a check (issue #14), beside a same-run baseline.

A 10 × 10 km city (one urban piece) with N detailed-plan parcels (a grid of 200 m squares, limits set)
and 8 × 20 assessment areas; screens a submission of P parcels of 100 × 60 m spread over the city with
declared values, and the same submission on the same blueprint without its features (the baseline).
Prints p50 per check in ms and the load average.

    PYTHONPATH=. python bench/bench_conditions.py [--plans 2500] [--parcels 1 10 100] [--repeat 15]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time

import geopandas as gpd
from shapely.geometry import box

from blueprint.features import condition_features
from checks.conditions import parse_declared
from checks.engine import Screener
from checks.results import result_json
from checks.rules import load_rules
from layers.catalogue import load_catalogue
from layers.ingest import with_attributes
from layers.model import ParcelSet, PlanLayer
from tests.checks.conftest import make_blueprint
from tests.geoms import X0, Y0

CODES = ["0701", "1001", "0901", "0801", "1101", "1401"]


def _layer(kind: str, geoms: list, attrs: dict) -> PlanLayer:
    frame = gpd.GeoDataFrame({"feature_id": [str(i) for i in range(len(geoms))], **attrs}, geometry=geoms,
                             crs="EPSG:4548")
    plan = PlanLayer(kind=kind, name=kind, source=kind, checksum=kind, crs_in="EPSG:4548", frame=frame)
    return with_attributes(plan, load_catalogue(), None)


def features(n_plans: int) -> gpd.GeoDataFrame:
    side = int(n_plans ** 0.5)
    step = 10_000 / side
    plans = [box(X0 + i * step, Y0 + j * step, X0 + (i + 1) * step, Y0 + (j + 1) * step)
             for i in range(side) for j in range(side)]
    n = len(plans)
    plan = _layer("detailed_plan", plans, {"YDDM": [CODES[i % len(CODES)] for i in range(n)],
                                            "RJL": [1.0 + i % 3 for i in range(n)], "JZMD": [40.0] * n,
                                            "LDL": [20.0] * n, "JZXG": [24.0 + i % 5 * 12 for i in range(n)]})
    types = list(load_catalogue().assessment_types)
    docs = [box(X0 + k * 500, Y0 + t * 1200, X0 + k * 500 + 700, Y0 + t * 1200 + 1500)
            for t in range(len(types)) for k in range(20)]
    assessment = _layer("regional_assessment", docs, {
        "PGLX": [types[i // 20] for i in range(len(docs))], "WH": [f"W{i}" for i in range(len(docs))],
        "PZRQ": ["2024-01-01"] * len(docs), "YXQZ": ["2029-12-31"] * len(docs)})
    return condition_features([plan, assessment], plan.frame.crs)


def submission(p: int) -> ParcelSet:
    geoms = [box(X0 + 37 + (i * 997) % 9800, Y0 + 53 + (i * 613) % 9800, X0 + 137 + (i * 997) % 9800,
                 Y0 + 113 + (i * 613) % 9800) for i in range(p)]
    frame = gpd.GeoDataFrame({"parcel_id": [str(i + 1) for i in range(p)]}, geometry=geoms, crs="EPSG:4548")
    return ParcelSet(frame=frame, source="bench")


def p50(screener: Screener, parcels: ParcelSet, repeat: int) -> float:
    declared = parse_declared({"far": 2.0, "land_use": "1001", "height_m": 30})
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result_json(screener.screen(parcels, "industrial", declared=declared, check_date=dt.date(2026, 6, 1)))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=2500)
    parser.add_argument("--parcels", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    catalogue = load_catalogue()
    rules = load_rules(None, catalogue)
    city = box(X0 - 10, Y0 - 10, X0 + 10_010, Y0 + 10_010)
    plain = make_blueprint([("P1", ["urban_boundary", "urban_space"], city)])
    with_features = make_blueprint([("P1", ["urban_boundary", "urban_space"], city)])
    with_features.features = features(args.plans)
    base, full = Screener(plain, rules, catalogue), Screener(with_features, rules, catalogue)
    rows = []
    for p in args.parcels:
        parcels = submission(p)
        rows.append({"parcels": p, "baseline_ms": round(p50(base, parcels, args.repeat), 2),
                     "with_conditions_ms": round(p50(full, parcels, args.repeat), 2)})
    print(json.dumps({"plan_parcels": len(with_features.features) - 160, "assessment_areas": 160,
                      "p50": rows, "loadavg": [round(v, 2) for v in os.getloadavg()]}, indent=1))


if __name__ == "__main__":
    main()
