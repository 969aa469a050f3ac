"""bench.province: a synthetic province (three 3° zones, 10⁶–10⁷ farmland patches) written tile by tile
to partitioned GeoParquet, never held in memory whole.

Usage: ``python -m bench.province --patches 1000000 --out DIR --seed 1 [--tiles N]``.

Layout of DIR (one GeoParquet file per tile and layer, EPSG:4548 — the storage CRS, see layers.crs):

    DIR/province.json                     manifest: crs, seed, tiles, layers (kind, name, files, counts)
    DIR/<kind>/part-00000.parquet ...      columns feature_id (str), geometry; one file per tile
    DIR/city_boundary/part-00000.parquet   the province outline (one feature)

The box spans Anhui's extent (114.9–119.6°E, 29.4–34.7°N): 3° zones 38, 39 and 40 (CM 114°, 117°, 120°).
Each tile draws from its own random stream (seed, tile), so a tile's content does not depend on how many
tiles were written before it, and the same seed gives the same province.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python bench/province.py
    sys.path.insert(0, str(ROOT))

from layers.model import PlanLayer  # noqa: E402

PROVINCE_LONLAT = (114.9, 29.4, 119.6, 34.7)  # Anhui's extent
STORAGE_EPSG = 4548  # CGCS2000 / 3-degree GK CM 117E: the province's middle zone (see layers.crs)
PATCHES_PER_TILE = 250_000  # one tile's arrays stay well under 1 GB
MANIFEST = "province.json"

# per 10⁶ farmland patches (the city bench's densities, red lines and urban boundaries halved: a province
# has proportionally less of its farmland under them); radii in farmland grid cells
BLOBS = {  # kind: (count per 10⁶ patches, radius min, radius max)
    "ecological_redline": (150, 5.0, 28.0),
    "urban_boundary": (12, 19.0, 71.0),
    "geohazard_zone": (40, 7.0, 48.0),
}
LAYERS = (  # kind, layer name, feature id prefix (in the order a build merges them)
    ("ecological_redline", "生态保护红线 synthetic province", "HX"),
    ("permanent_farmland", "永久基本农田 synthetic province", "NT"),
    ("urban_boundary", "城镇开发边界 synthetic province", "KB"),
    ("urban_space", "城镇空间 synthetic province", "CZ"),
    ("agricultural_space", "农业空间 synthetic province", "NY"),
    ("ecological_space", "生态空间 synthetic province", "ST"),
    ("geohazard_zone", "地质灾害高易发区 synthetic province", "DZ"),
)
BOUNDARY = ("city_boundary", "行政区划 synthetic province", "XZQ")


def province_box(crs: CRS | None = None) -> tuple[float, float, float, float]:
    """The province's extent in ``crs`` (default the storage CRS), whole metres."""
    tr = Transformer.from_crs(4490, crs or CRS.from_epsg(STORAGE_EPSG), always_xy=True)
    lon0, lat0, lon1, lat1 = PROVINCE_LONLAT
    lon = np.array([lon0, lon1, lon0, lon1, (lon0 + lon1) / 2, (lon0 + lon1) / 2])
    lat = np.array([lat0, lat0, lat1, lat1, lat0, lat1])
    x, y = tr.transform(lon, lat)
    return (math.floor(min(x)), math.floor(min(y)), math.ceil(max(x)), math.ceil(max(y)))


@dataclass(frozen=True)
class Tile:
    """One partition of the province: its index, box and number of farmland patches."""

    index: int
    box: tuple[float, float, float, float]
    patches: int


def tiles(patches: int, n_tiles: int | None = None) -> list[Tile]:
    """The province box cut into about ``n_tiles`` tiles (default: ≤ PATCHES_PER_TILE patches each)."""
    xmin, ymin, xmax, ymax = province_box()
    wanted = n_tiles or max(1, math.ceil(patches / PATCHES_PER_TILE))
    nx = max(1, round(math.sqrt(wanted * (xmax - xmin) / (ymax - ymin))))
    ny = max(1, math.ceil(wanted / nx))
    xs, ys = np.linspace(xmin, xmax, nx + 1).round(), np.linspace(ymin, ymax, ny + 1).round()
    count = nx * ny
    out = []
    for j in range(ny):
        for i in range(nx):
            k = j * nx + i
            share = patches // count + (1 if k < patches % count else 0)
            out.append(Tile(k, (float(xs[i]), float(ys[j]), float(xs[i + 1]), float(ys[j + 1])), share))
    return out


def _farmland(
    rng: np.random.Generator, box: tuple[float, float, float, float], n: int
) -> tuple[np.ndarray, float]:
    """``n`` non-overlapping jittered quadrilaterals in ``box``, one in each of ``n`` random grid cells;
    and the grid cell size."""
    xmin, ymin, xmax, ymax = box
    cell = float(np.sqrt((xmax - xmin) * (ymax - ymin) * 0.6 / max(n, 1)))  # ~60 % of cells carry a patch
    nx, ny = max(1, int((xmax - xmin) // cell)), max(1, int((ymax - ymin) // cell))
    if n == 0:
        return np.empty(0, dtype=object), cell
    picked = np.sort(rng.choice(nx * ny, size=min(n, nx * ny), replace=False))
    x0, y0 = xmin + (picked % nx) * cell, ymin + (picked // nx) * cell
    m = len(picked)
    lo, hi = 0.05 * cell, 0.3 * cell  # each corner jittered inside its own quadrant
    coords = np.empty((m, 5, 2))
    for k, (cx, cy) in enumerate([(lo, lo), (cell - lo, lo), (cell - lo, cell - lo), (lo, cell - lo)]):
        sx, sy = (1 if cx < cell / 2 else -1), (1 if cy < cell / 2 else -1)
        coords[:, k, 0] = x0 + cx + sx * rng.uniform(0, hi - lo, m)
        coords[:, k, 1] = y0 + cy + sy * rng.uniform(0, hi - lo, m)
    coords[:, 4] = coords[:, 0]
    # whole millimetres: plan data arrives surveyed to the millimetre, and parquet round trips stay exact
    return np.asarray(shapely.polygons(np.round(coords, 3))), cell


def _blobs(
    rng: np.random.Generator, box: tuple[float, float, float, float], n: int, r_min: float, r_max: float
) -> np.ndarray:
    """``n`` irregular round blobs (stretched buffered points) clipped to ``box``."""
    xmin, ymin, xmax, ymax = box
    x, y = rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)
    r = rng.uniform(r_min, r_max, n)
    sx, sy = rng.uniform(0.6, 1.4, n), rng.uniform(0.6, 1.4, n)
    circles = shapely.buffer(shapely.points(x, y), r, quad_segs=6)
    coords, owner = shapely.get_coordinates(circles, return_index=True)
    coords = np.column_stack(
        [x[owner] + (coords[:, 0] - x[owner]) * sx[owner], y[owner] + (coords[:, 1] - y[owner]) * sy[owner]]
    )
    rings = shapely.linearrings(np.round(coords, 3), indices=owner)
    blobs = shapely.intersection(shapely.polygons(rings), shapely.box(*box), grid_size=0.001)
    keep = ~shapely.is_empty(blobs) & (shapely.area(blobs) > 0)
    return np.asarray(shapely.get_parts(blobs[keep])) if keep.any() else np.empty(0, dtype=object)


def tile_layers(tile: Tile, seed: int) -> dict[str, np.ndarray]:
    """Every layer's geometries inside one tile (kind → array of polygons)."""
    rng = np.random.default_rng([seed, tile.index])
    box = shapely.box(*tile.box)
    farmland, cell = _farmland(rng, tile.box, tile.patches)
    out: dict[str, np.ndarray] = {"permanent_farmland": farmland}
    for kind, (per_million, r_min, r_max) in BLOBS.items():
        expected = per_million * tile.patches / 1e6
        # below one blob a tile still gets one, shrunk so the covered share of the tile stays the same
        shrink = math.sqrt(min(1.0, expected))
        out[kind] = _blobs(
            rng, tile.box, max(1, round(expected)), r_min * cell * shrink, r_max * cell * shrink
        )
    urban = shapely.intersection(
        shapely.union_all(shapely.buffer(out["urban_boundary"], 3.5 * cell, quad_segs=4)),
        box,
        grid_size=0.001,
    )
    eco = shapely.difference(
        shapely.intersection(
            shapely.union_all(shapely.buffer(out["ecological_redline"], 7 * cell, quad_segs=4)),
            box,
            grid_size=0.001,
        ),
        urban,
        grid_size=0.001,
    )
    agri = shapely.difference(box, shapely.union_all([urban, eco]), grid_size=0.001)
    for kind, geom in (("urban_space", urban), ("ecological_space", eco), ("agricultural_space", agri)):
        geom = shapely.make_valid(geom) if not geom.is_valid else geom
        parts = [g for g in shapely.get_parts(np.asarray([geom])) if g.geom_type == "Polygon" and g.area > 0]
        out[kind] = np.asarray([shapely.multipolygons(parts)] if parts else [], dtype=object)
    return out


def _frame(geoms: np.ndarray, prefix: str, tile: int, crs: CRS) -> gpd.GeoDataFrame:
    ids = [f"{prefix}{tile:04d}-{i:07d}" for i in range(1, len(geoms) + 1)]
    return gpd.GeoDataFrame({"feature_id": ids}, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


def generate_province(
    out_dir: Path | str, patches: int, *, seed: int = 1, n_tiles: int | None = None, progress: bool = False
) -> dict[str, Any]:
    """Write the synthetic province with ``patches`` farmland patches to ``out_dir``; return the manifest.

    One tile at a time is generated and written, so memory is bounded by a tile (≤ PATCHES_PER_TILE
    patches by default), not by the province.
    """
    out = Path(out_dir)
    crs = CRS.from_epsg(STORAGE_EPSG)
    parts = tiles(patches, n_tiles)
    counts: dict[str, list[int]] = {kind: [] for kind, _name, _prefix in LAYERS}
    t0 = time.perf_counter()
    for tile in parts:
        geoms = tile_layers(tile, seed)
        for kind, _name, prefix in LAYERS:
            (out / kind).mkdir(parents=True, exist_ok=True)
            _frame(geoms[kind], prefix, tile.index, crs).to_parquet(
                out / kind / f"part-{tile.index:05d}.parquet"
            )
            counts[kind].append(len(geoms[kind]))
        if progress:
            print(
                f"tile {tile.index + 1}/{len(parts)} written ({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    kind, name, prefix = BOUNDARY
    (out / kind).mkdir(parents=True, exist_ok=True)
    _frame(np.asarray([shapely.box(*province_box())]), prefix, 0, crs).to_parquet(
        out / kind / "part-00000.parquet"
    )
    manifest = {
        "crs": f"EPSG:{STORAGE_EPSG}",
        "seed": seed,
        "patches": patches,
        "box": province_box(),
        "lonlat": PROVINCE_LONLAT,
        "tiles": [{"index": t.index, "box": t.box, "patches": t.patches} for t in parts],
        "layers": [
            {
                "kind": k,
                "name": n,
                "files": [f"{k}/part-{t.index:05d}.parquet" for t in parts],
                "counts": counts[k],
                "feature_count": sum(counts[k]),
            }
            for k, n, _p in LAYERS
        ],
        "boundary": {
            "kind": kind,
            "name": name,
            "files": [f"{kind}/part-00000.parquet"],
            "counts": [1],
            "feature_count": 1,
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def read_manifest(out_dir: Path | str) -> dict[str, Any]:
    """The manifest a :func:`generate_province` run wrote."""
    return dict(json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8")))


def _plan_layer(entry: dict[str, Any], frame: gpd.GeoDataFrame, seed: int) -> PlanLayer:
    return PlanLayer(
        kind=entry["kind"],
        name=entry["name"],
        source=f"synthetic-province/{entry['kind']}",
        checksum=f"synthetic-province-{entry['kind']}-{entry['feature_count']}-seed{seed}",
        crs_in=f"EPSG:{STORAGE_EPSG}",
        frame=frame,
    )


def layer_parts(out_dir: Path | str) -> Iterator[tuple[PlanLayer, list[Path]]]:
    """Each layer (boundary last) as an empty-framed :class:`PlanLayer` and its part files — for
    builds that read the parts one at a time."""
    manifest = read_manifest(out_dir)
    crs = CRS.from_user_input(manifest["crs"])
    for entry in [*manifest["layers"], manifest["boundary"]]:
        empty = gpd.GeoDataFrame({"feature_id": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
        yield _plan_layer(entry, empty, manifest["seed"]), [Path(out_dir) / f for f in entry["files"]]


def load_layers(out_dir: Path | str) -> tuple[list[PlanLayer], PlanLayer]:
    """The whole province in memory: plan layers and the boundary (for in-memory builds and tests)."""
    import pandas as pd

    manifest = read_manifest(out_dir)
    loaded = []
    for entry in [*manifest["layers"], manifest["boundary"]]:
        frames = [gpd.read_parquet(Path(out_dir) / f) for f in entry["files"]]
        frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
        loaded.append(_plan_layer(entry, frame, manifest["seed"]))
    return loaded[:-1], loaded[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, required=True, help="farmland patches in the province")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tiles",
        type=int,
        default=None,
        help=f"number of tiles (default: ≤ {PATCHES_PER_TILE:,} patches each)",
    )
    args = parser.parse_args(argv)
    if args.patches < 0:
        print(json.dumps({"error": "--patches must be ≥ 0"}), file=sys.stderr)
        return 3
    t0 = time.perf_counter()
    manifest = generate_province(args.out, args.patches, seed=args.seed, n_tiles=args.tiles, progress=True)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "seconds": round(time.perf_counter() - t0, 1),
                "tiles": len(manifest["tiles"]),
                "features": {e["kind"]: e["feature_count"] for e in manifest["layers"]},
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
