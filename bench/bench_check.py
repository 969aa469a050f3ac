"""bench.bench_check: single-parcel screening latency in process vs the same query in PostGIS.

Usage:  .venv/bin/python -m bench.bench_check [--pieces 1000000] [--queries 1000] [--merge-farmland 10000]
        .venv/bin/python -m bench.bench_check --geojson-only [--queries 1000]

Two blueprints:
  * "merged": bench.synthetic.scaled_layers(--merge-farmland) merged by blueprint.merge.build_blueprint
    (a real blueprint, demo-city scale);
  * "direct": ≈ --pieces pieces built directly from the synthetic farmland patches plus their grid
    complement (each grid cell minus its patch), kinds assigned by the synthetic zones/lines at each
    piece's representative point. Merging 10⁶ pieces takes too long on the shared 2-core box, so the
    10⁶-piece blueprint is made this way; it is still a planar partition with the pieces contract.

Figures: p50/p99 wall time of `Screener.screen` + `result_json` (the full result: repair check, areas
both ways, rules, explanations, GeoJSON), of the bare engine core (`Screener.overlaps`: tree query,
intersection, per-kind union, areas), and of PostGIS `ST_Intersects` + `ST_Area(ST_Intersection)` on a
GiST index (psycopg2 round trip, scratch database created and dropped). CPU time is printed beside the
wall time because the box is shared and wall time is noisy.

Also (first, and alone with --geojson-only): `layers.ingest.parcels_from_geojson` on the approval
system's typical body, one RFC 7946 Feature in EPSG:4326 reprojected to EPSG:4548: p50/p99 per call
after one warm-up call (its first call in a process loads the PROJ database and is printed apart).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from bench.synthetic import XMAX, XMIN, YMAX, YMIN, scaled_layers
from blueprint.model import Blueprint, LayerRef
from checks.engine import Screener
from checks.results import result_json
from checks.rules import load_rules
from layers.catalogue import load_catalogue
from layers.model import ParcelSet

WORK = CRS.from_epsg(4548)
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


# --- blueprints ------------------------------------------------------------------------------------

def merged_blueprint(n_farmland: int) -> Blueprint:
    """A real blueprint: the synthetic layers merged by blueprint.merge."""
    from blueprint.merge import build_blueprint
    from blueprint.precedence import load_precedence

    catalogue = load_catalogue()
    layers, boundary = scaled_layers(n_farmland)
    return build_blueprint(layers, catalogue=catalogue, precedence=load_precedence(None, catalogue),
                           tolerance_m=0.5, version=f"merged-{n_farmland}", boundary=boundary)


def _grid(patches: np.ndarray, n: int) -> tuple[float, int, int]:
    """The farmland grid of bench.synthetic (one patch per picked cell), checked against the patches."""
    cell = float(np.sqrt((XMAX - XMIN) * (YMAX - YMIN) * 0.6 / n))
    nx, ny = int((XMAX - XMIN) // cell), int((YMAX - YMIN) // cell)
    return cell, nx, ny


def _zone_kinds(layers: list[Any], x: np.ndarray, y: np.ndarray) -> list[list[str]]:
    """Effective kinds at points: one line (precedence order), one zone, plus the hazard overlay."""
    by_kind = {layer.kind: shapely.union_all(layer.frame.geometry.values) for layer in layers}
    inside = {}
    for kind, geom in by_kind.items():
        shapely.prepare(geom)
        inside[kind] = shapely.contains_xy(geom, x, y)
    kinds: list[list[str]] = [[] for _ in range(len(x))]
    for i in range(len(x)):
        row = kinds[i]
        for line in ("ecological_redline", "urban_boundary"):
            if inside[line][i]:
                row.append(line)
                break
        for zone in ("ecological_space", "urban_space", "agricultural_space"):
            if inside[zone][i]:
                row.append(zone)
                break
        if inside["geohazard_zone"][i]:
            row.append("geohazard_zone")
    return kinds


def direct_blueprint(target_pieces: int, seed: int = 1) -> Blueprint:
    """≈ target_pieces pieces: farmland patches + (grid cell − patch) complements, no merge."""
    n = max(10, int(target_pieces / (1 + 1 / 0.6)))  # cells ≈ n / 0.6, pieces ≈ cells + n
    layers, _boundary = scaled_layers(n, seed=seed)
    farm = next(layer for layer in layers if layer.kind == "permanent_farmland")
    patches = np.asarray(farm.frame.geometry.values, dtype=object)
    cell, nx, ny = _grid(patches, len(patches))
    cx, cy = shapely.get_coordinates(shapely.centroid(patches)).T
    col, row = ((cx - XMIN) // cell).astype(int), ((cy - YMIN) // cell).astype(int)
    cells_of_patch = row * nx + col
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny))
    ix, iy = ix.ravel(), iy.ravel()
    cells = shapely.box(XMIN + ix * cell, YMIN + iy * cell, XMIN + (ix + 1) * cell, YMIN + (iy + 1) * cell)
    assert shapely.contains(cells[cells_of_patch], patches).all(), "synthetic grid changed"
    complement = cells.copy()
    complement[cells_of_patch] = shapely.difference(cells[cells_of_patch], patches)
    edges = [e for e in _edge_strips(cell, nx, ny) if e.area > 0]
    geoms = np.concatenate([patches, complement, np.asarray(edges, dtype=object)])
    px, py = shapely.get_coordinates(shapely.point_on_surface(geoms)).T
    kinds = _zone_kinds([layer for layer in layers if layer.kind != "permanent_farmland"], px, py)
    ids = list(farm.frame["feature_id"])
    for i in range(len(patches)):  # farmland yields only to the red line (precedence)
        line = "ecological_redline" if "ecological_redline" in kinds[i] else "permanent_farmland"
        kinds[i] = [line] + [k for k in kinds[i] if k not in ("ecological_redline", "urban_boundary")]
    sources = [json.dumps([{"kind": k, "layer": "永久基本农田 synthetic" if k == "permanent_farmland"
                            else f"{k} synthetic", "feature_id": ids[i] if (i < len(ids) and
                            k == "permanent_farmland") else "1", "source": "synthetic", "checksum": "-"}
                           for k in ks], ensure_ascii=False) for i, ks in enumerate(kinds)]
    kinds_json = [json.dumps(k) for k in kinds]
    pieces = gpd.GeoDataFrame({
        "piece_id": [f"P{i + 1:07d}" for i in range(len(geoms))],
        "kind": [k[0] if k else "unplanned" for k in kinds], "kinds": kinds_json, "covered_by": kinds_json,
        "sources": sources, "area_m2": shapely.area(geoms)}, geometry=geoms, crs=WORK)
    conflicts = gpd.GeoDataFrame({"conflict_id": []}, geometry=[], crs=WORK)
    refs = tuple(LayerRef(layer.kind, layer.name, layer.source, layer.checksum, len(layer.frame))
                 for layer in layers)
    return Blueprint(version=f"direct-{len(geoms)}", crs=WORK, pieces=pieces, conflicts=conflicts,
                     layers=refs, precedence=("ecological_redline", "permanent_farmland", "urban_boundary"),
                     tolerance_m=0.5, status="published")


def _edge_strips(cell: float, nx: int, ny: int) -> list[shapely.Polygon]:
    """The strips right of and above the grid, noded like a built blueprint: every grid corner on their
    shared edges is a vertex of the strip too (no T-junctions, so the pieces form a valid coverage that
    ``shapely.coverage_union_all`` accepts, as a real build's pieces do)."""
    x0, y0 = XMIN + nx * cell, YMIN + ny * cell
    ys = [YMIN + k * cell for k in range(ny + 1)]
    xs = [XMIN + k * cell for k in range(nx + 1)]
    right = shapely.Polygon([(x0, YMIN), (XMAX, YMIN), (XMAX, YMAX), (x0, YMAX),
                             *[(x0, y) for y in ys[::-1]]])
    top = shapely.Polygon([*[(x, y0) for x in xs], (x0, YMAX), (XMIN, YMAX)])
    return [shapely.normalize(right), shapely.normalize(top)]


# --- queries ---------------------------------------------------------------------------------------

def query_parcels(n: int, seed: int = 7, margin: float = 2000.0,
                  box: tuple[float, float, float, float] = (XMIN, YMIN, XMAX, YMAX)) -> list[Any]:
    """Rotated rectangles of 80–300 m, typical construction parcels, well inside ``box`` (the city)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(box[0] + margin, box[2] - margin, n)
    y = rng.uniform(box[1] + margin, box[3] - margin, n)
    w, h, a = rng.uniform(80, 300, n), rng.uniform(80, 300, n), rng.uniform(0, np.pi, n)
    out = []
    for xi, yi, wi, hi, ai in zip(x, y, w, h, a, strict=True):
        corners = np.array([[-wi, -hi], [wi, -hi], [wi, hi], [-wi, hi]]) / 2
        rot = np.array([[np.cos(ai), -np.sin(ai)], [np.sin(ai), np.cos(ai)]])
        out.append(shapely.Polygon(corners @ rot.T + [xi, yi]))
    return out


def percentiles(samples: list[float]) -> str:
    ms = np.asarray(samples) * 1e3
    return f"p50 {np.percentile(ms, 50):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms"


def timed(fn: Callable[[Any], Any], items: list[Any]) -> tuple[list[float], list[float]]:
    """Per-item wall and CPU seconds (CPU: this process only, robust to a busy machine)."""
    wall, cpu = [], []
    for item in items:
        w0, c0 = time.perf_counter(), time.process_time()
        fn(item)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


# --- PostGIS ---------------------------------------------------------------------------------------

@contextmanager
def scratch_database(prefix: str = "bench_check") -> Iterator[Any]:
    """A fresh PostGIS database on the local server, dropped afterwards."""
    import psycopg2

    name = f"{prefix}_{os.getpid()}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn = psycopg2.connect(dbname=name, **PG)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION postgis")
        conn.commit()
        yield conn
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def load_pieces(conn: Any, pieces: gpd.GeoDataFrame, table: str = "pieces") -> float:
    """COPY the pieces in (EWKB hex), build the GiST index, ANALYZE; returns seconds."""
    t0 = time.perf_counter()
    srid = pieces.crs.to_epsg()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (piece_id text, kinds text, geom geometry(Geometry, {srid}))")
        wkb = shapely.to_wkb(np.asarray(pieces.geometry.values), hex=True, include_srid=False)
        buf = io.StringIO()
        for pid, kinds, g in zip(pieces["piece_id"], pieces["kinds"], wkb, strict=True):
            buf.write(f"{pid}\t{kinds}\tSRID={srid};{g}\n")
        buf.seek(0)
        cur.copy_expert(f"COPY {table} (piece_id, kinds, geom) FROM STDIN", buf)
        cur.execute(f"CREATE INDEX {table}_gix ON {table} USING gist (geom)")
        cur.execute(f"ANALYZE {table}")
    conn.commit()
    return time.perf_counter() - t0


def postgis_query(conn: Any, table: str = "pieces", srid: int = 4548) -> Callable[[Any], Any]:
    """The same single-parcel query in SQL: pieces hit and their overlap areas."""
    sql = (f"SELECT p.piece_id, p.kinds, ST_Area(ST_Intersection(p.geom, q.g)) "
           f"FROM {table} p, (SELECT ST_GeomFromWKB(%s, {srid}) AS g) q WHERE ST_Intersects(p.geom, q.g)")
    cur = conn.cursor()

    def run(geom: Any) -> Any:
        cur.execute(sql, (shapely.to_wkb(geom),))
        return cur.fetchall()

    return run


# --- the benchmark ---------------------------------------------------------------------------------

def geojson_body(query: Any) -> dict[str, Any]:
    """One parcel as the approval system posts it: a FeatureCollection in EPSG:4326, with id and name."""
    from layers.crs import OUTPUT_CRS

    lonlat = gpd.GeoSeries([query], crs=WORK).to_crs(OUTPUT_CRS).iloc[0]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"parcel_id": "DK-1", "name": "地块一"},
         "geometry": shapely.geometry.mapping(lonlat)}]}


def bench_geojson(queries: list[Any]) -> float:
    """p50/p99 of layers.ingest.parcels_from_geojson for one-parcel bodies; returns the p50 in ms."""
    from layers.ingest import parcels_from_geojson

    bodies = [geojson_body(q) for q in queries]
    t0 = time.perf_counter()
    parcels_from_geojson(bodies[0], work_crs=WORK)
    first = time.perf_counter() - t0
    wall, cpu = timed(lambda b: parcels_from_geojson(b, work_crs=WORK), bodies)
    print(f"\n== layers.ingest.parcels_from_geojson, one parcel (EPSG:4326 → 4548), {len(bodies)} bodies ==")
    print(f"  first call in the process {first * 1e3:.1f} ms (PROJ database, transformer)")
    print(f"  then                      wall {percentiles(wall)}   cpu {percentiles(cpu)}")
    return float(np.percentile(wall, 50) * 1e3)


def same_query(screener: Screener) -> Callable[[Any], Any]:
    """In process, exactly what the SQL computes: candidate pieces, their kinds, overlap areas."""
    tree, geoms, ids, kinds = screener._tree, screener._geoms, screener._piece_ids, screener._piece_combo

    def run(geom: Any) -> Any:
        hit = tree.query(geom, predicate="intersects")
        return list(zip(ids[hit], kinds[hit], shapely.area(shapely.intersection(geom, geoms[hit])),
                        strict=True))

    return run


def bench_blueprint(label: str, blueprint: Blueprint, queries: list[Any],
                    with_postgis: bool) -> dict[str, Any]:
    catalogue = load_catalogue()
    t0 = time.perf_counter()
    screener = Screener(blueprint, load_rules(None, catalogue), catalogue)
    build_s = time.perf_counter() - t0
    sets = [ParcelSet(gpd.GeoDataFrame({"parcel_id": ["1"]}, geometry=[q], crs=WORK)) for q in queries]
    arrays = [np.asarray([q], dtype=object) for q in queries]
    for p in sets[:20]:  # warm caches (transformers, sources JSON)
        result_json(screener.screen(p, "industrial"))
    full = timed(lambda p: result_json(screener.screen(p, "industrial")), sets)
    core = timed(lambda a: screener.overlaps(a, urban_construction=True), arrays)
    same = timed(same_query(screener), queries)
    print(f"\n== {label}: {screener.piece_count:,} pieces (Screener built in {build_s:.2f} s) ==")
    print(f"  in process, full result   wall {percentiles(full[0])}   cpu {percentiles(full[1])}")
    print(f"  in process, engine core   wall {percentiles(core[0])}   cpu {percentiles(core[1])}")
    print(f"  in process, the SQL query wall {percentiles(same[0])}   cpu {percentiles(same[1])}")
    figures: dict[str, Any] = {"pieces": screener.piece_count,
                               "full_p50_ms": np.percentile(full[0], 50) * 1e3,
                               "core_p50_ms": np.percentile(core[0], 50) * 1e3}
    if with_postgis:
        with scratch_database() as conn:
            load_s = load_pieces(conn, blueprint.pieces)
            query = postgis_query(conn)
            for q in queries[:20]:
                query(q)
            pg = timed(query, queries)
            print(f"  PostGIS (loaded + GiST in {load_s:.1f} s)")
            print(f"  PostGIS ST_Intersects+ST_Area(ST_Intersection)  wall {percentiles(pg[0])}")
            pg50 = np.percentile(pg[0], 50)
            print(f"  PostGIS p50 / in-process p50: same query {pg50 / np.percentile(same[0], 50):.1f}×, "
                  f"engine core {pg50 / np.percentile(core[0], 50):.1f}×, "
                  f"full result {pg50 / np.percentile(full[0], 50):.1f}×  (target ≥ 2×)")
            figures["postgis_p50_ms"] = pg50 * 1e3
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=1_000_000, help="pieces of the direct blueprint")
    parser.add_argument("--merge-farmland", type=int, default=10_000,
                        help="farmland of the merged blueprint (0: skip)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--geojson-only", action="store_true",
                        help="only time layers.ingest.parcels_from_geojson (no blueprint)")
    args = parser.parse_args(argv)
    queries = query_parcels(args.queries)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (shared box)")
    bench_geojson(queries)
    if args.geojson_only:
        return
    print("bench_check: single-parcel screening, industrial project type; target p50 ≤ 5 ms at 10⁶ pieces, "
          "≥ 2× faster than PostGIS")
    if args.merge_farmland:
        t0 = time.perf_counter()
        merged = merged_blueprint(args.merge_farmland)
        print(f"merged blueprint built by blueprint.merge in {time.perf_counter() - t0:.1f} s")
        bench_blueprint(f"merged blueprint ({args.merge_farmland:,} farmland)", merged, queries,
                        not args.no_postgis)
        del merged
    t0 = time.perf_counter()
    direct = direct_blueprint(args.pieces)
    print(f"direct blueprint built in {time.perf_counter() - t0:.1f} s")
    figures = bench_blueprint("direct blueprint", direct, queries, not args.no_postgis)
    verdict = "met" if figures["full_p50_ms"] <= 5.0 else "NOT met"
    print(f"\ntarget p50 ≤ 5 ms at {figures['pieces']:,} pieces: {verdict} (full result "
          f"{figures['full_p50_ms']:.2f} ms, engine core {figures['core_p50_ms']:.2f} ms)")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
