"""bench.synthetic: a scaled synthetic city near Tongling (plan layers + boundary), built in memory."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from layers.model import PlanLayer

# ≈50 × 60 km box in EPSG:4548 around Tongling (117.8°E, 30.9°N → E≈577 km, N≈3424 km)
XMIN, YMIN, XMAX, YMAX = 552_000.0, 3_394_000.0, 602_000.0, 3_454_000.0


def _layer(kind: str, name: str, geoms: np.ndarray, crs: CRS, prefix: str) -> PlanLayer:
    ids = [f"{prefix}{i:07d}" for i in range(1, len(geoms) + 1)]
    frame = gpd.GeoDataFrame({"feature_id": ids}, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    return PlanLayer(kind=kind, name=name, source=f"synthetic/{kind}.gpkg",
                     checksum=f"synthetic-{kind}-{len(geoms)}", crs_in=crs.to_string(), frame=frame)


def _blobs(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> np.ndarray:
    """Irregular round blobs: buffered points stretched and sheared a little."""
    x = rng.uniform(XMIN, XMAX, n)
    y = rng.uniform(YMIN, YMAX, n)
    r = rng.uniform(r_min, r_max, n)
    circles = shapely.buffer(shapely.points(x, y), r, quad_segs=6)
    # stretch each blob along a random axis so they are not all circles
    out = np.empty(n, dtype=object)
    for i, (g, sx, sy) in enumerate(zip(circles, rng.uniform(0.6, 1.4, n), rng.uniform(0.6, 1.4, n),
                                        strict=True)):
        c = shapely.get_coordinates(g)
        cx, cy = x[i], y[i]
        c = np.column_stack([cx + (c[:, 0] - cx) * sx, cy + (c[:, 1] - cy) * sy])
        out[i] = shapely.polygons(c)
    return out


def _farmland(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` non-overlapping jittered quadrilaterals, one inside each of ``n`` random grid cells."""
    area = (XMAX - XMIN) * (YMAX - YMIN)
    cell = float(np.sqrt(area * 0.6 / n))  # ~60 % of grid cells carry a patch
    nx, ny = int((XMAX - XMIN) // cell), int((YMAX - YMIN) // cell)
    picked = np.sort(rng.choice(nx * ny, size=min(n, nx * ny), replace=False))
    x0 = XMIN + (picked % nx) * cell
    y0 = YMIN + (picked // nx) * cell
    m = len(picked)
    lo, hi = 0.05 * cell, 0.3 * cell  # each corner jittered inside its own quadrant
    corners = [(lo, lo), (cell - lo, lo), (cell - lo, cell - lo), (lo, cell - lo)]
    coords = np.empty((m, 5, 2))
    for k, (cx, cy) in enumerate(corners):
        sx = 1 if cx < cell / 2 else -1
        sy = 1 if cy < cell / 2 else -1
        coords[:, k, 0] = x0 + cx + sx * rng.uniform(0, hi - lo, m)
        coords[:, k, 1] = y0 + cy + sy * rng.uniform(0, hi - lo, m)
    coords[:, 4] = coords[:, 0]
    return np.asarray(shapely.polygons(coords))


def scaled_layers(n_farmland: int, seed: int = 1,
                  work_crs: CRS | str | int = "EPSG:4548") -> tuple[list[PlanLayer], PlanLayer]:
    """Plan layers of a synthetic city with ``n_farmland`` farmland patches, and its boundary.

    Red-line and urban-boundary blobs overlap some farmland (the conflicts a merge must find);
    the three zones tile the box (urban around the urban blobs, ecological around the red lines).
    """
    crs = CRS.from_user_input(work_crs)
    rng = np.random.default_rng(seed)
    city = shapely.box(XMIN, YMIN, XMAX, YMAX)
    farmland = _farmland(rng, n_farmland)
    redline = _blobs(rng, 300, 200.0, 1200.0)
    urban = _blobs(rng, 25, 800.0, 3000.0)
    hazard = _blobs(rng, 40, 300.0, 2000.0)
    urban_space = shapely.intersection(shapely.union_all(shapely.buffer(urban, 150.0, quad_segs=4)), city)
    eco_space = shapely.difference(
        shapely.intersection(shapely.union_all(shapely.buffer(redline, 300.0, quad_segs=4)), city),
        urban_space)
    agri_space = shapely.difference(city, shapely.union_all([urban_space, eco_space]))
    layers = [
        _layer("ecological_redline", "生态保护红线 synthetic", redline, crs, "HX"),
        _layer("permanent_farmland", "永久基本农田 synthetic", farmland, crs, "NT"),
        _layer("urban_boundary", "城镇开发边界 synthetic", urban, crs, "KB"),
        _layer("urban_space", "城镇空间 synthetic", np.array([urban_space]), crs, "CZ"),
        _layer("agricultural_space", "农业空间 synthetic", np.array([agri_space]), crs, "NY"),
        _layer("ecological_space", "生态空间 synthetic", np.array([eco_space]), crs, "ST"),
        _layer("geohazard_zone", "地质灾害高易发区 synthetic", hazard, crs, "DZ"),
    ]
    boundary = _layer("city_boundary", "行政区划 synthetic", np.array([city]), crs, "XZQ")
    return layers, boundary
