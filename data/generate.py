"""data.generate: the reproducible Tongling (铜陵市) demo city: boundaries, plan layers, parcels, projects."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

try:  # run as a script (python data/generate.py) or imported as data.generate
    from layers.bubiao import write_bubiao
except ModuleNotFoundError:  # pragma: no cover - script run from outside the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from layers.bubiao import write_bubiao
try:
    from data import planning
except ModuleNotFoundError:  # pragma: no cover - run as a script with an installed `layers`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from data import planning

WORK_EPSG = 4548  # CGCS2000 / 3-degree GK CM 117E: metres, no zone prefix
DEFAULT_SEED = 20261123
DEFAULT_FARMLAND = 5000
CITY = "铜陵市"
DISTRICT_CODES = {"铜官区": "340705", "义安区": "340706", "郊区": "340711", "枞阳县": "340722"}
FILE_DATE = "2026-11-23"  # a fixed production date keeps the files byte-stable across runs

# Urban development boundary blobs around the district seats (lon, lat, radius m).
SEATS: tuple[tuple[str, str, float, float, float], ...] = (
    ("铜陵市中心城区", "铜官区", 117.812, 30.935, 4200.0),
    ("义安区顺安镇区", "义安区", 117.920, 30.880, 1500.0),
    ("郊区大通镇区", "郊区", 117.660, 30.830, 1100.0),
    ("枞阳县城区", "枞阳县", 117.210, 30.700, 2200.0),
)

# Ecological red-line blobs: (名称, 类型, district, radius m). Centres are drawn by the seeded RNG
# inside the district, away from urban land, except 铜官山 which sits at the edge of the city centre.
REDLINE_BLOBS: tuple[tuple[str, str, str, float], ...] = (
    ("浮山水土保持生态保护红线", "水土保持", "枞阳县", 2600.0),
    ("白荡湖湿地生物多样性维护区", "生物多样性维护", "枞阳县", 3000.0),
    ("菜子湖湿地生物多样性维护区", "生物多样性维护", "枞阳县", 2400.0),
    ("凤凰山水源涵养区", "水源涵养", "义安区", 2200.0),
    ("叶山林场水土保持区", "水土保持", "义安区", 1800.0),
    ("大通湿地生物多样性维护区", "生物多样性维护", "郊区", 1600.0),
)
RIVER_REDLINE = ("长江铜陵段水生生物保护区", "生物多样性维护")
TONGGUANSHAN = ("铜官山水土保持区", "水土保持", 117.790, 30.905, 900.0)
FOREST_BLOBS = (("枞阳县", 3500.0), ("枞阳县", 2800.0), ("义安区", 2500.0), ("郊区", 1800.0))

# Geological-hazard high-susceptibility zones: (名称, 灾害类型, lon, lat or None = drawn, district, radius).
HAZARDS: tuple[tuple[str, str, str, float], ...] = (
    ("铜官山矿区采空塌陷高易发区", "地面塌陷", "铜官区", 900.0),
    ("狮子山矿区采空塌陷高易发区", "地面塌陷", "义安区", 1200.0),
    ("浮山崩塌滑坡高易发区", "崩塌", "枞阳县", 1500.0),
    ("叶山滑坡高易发区", "滑坡", "义安区", 1100.0),
    ("大通岸坡崩塌高易发区", "崩塌", "郊区", 800.0),
)

GRID = 0.0001  # metres
SLIVER_WIDTH = 0.2  # metres: the digitising mismatch built in along red line / farmland shared edges
N_FARMLAND_IN_URBAN = 12
N_FARMLAND_IN_REDLINE = 10


def log(msg: str, t0: float) -> None:
    print(f"[generate {time.perf_counter() - t0:6.2f}s] {msg}", file=sys.stderr)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent RNG per layer, so changing one layer never shifts another's geometry."""
    key = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:4], "little")
    return np.random.default_rng([seed, key])


# ---------------------------------------------------------------- boundaries (cnmaps, GCJ-02 → WGS84)


def gcj_to_wgs(geom: BaseGeometry) -> BaseGeometry:
    """Undo the GCJ-02 offset of 高德 vertices with eviltransform's exact (iterative) inverse."""
    import eviltransform

    def convert(lonlat: np.ndarray) -> np.ndarray:
        out = np.empty_like(lonlat)
        for i, (lon, lat) in enumerate(lonlat):  # a few thousand boundary vertices only
            wlat, wlon = eviltransform.gcj2wgs_exact(float(lat), float(lon))
            out[i] = (wlon, wlat)
        return out

    return shapely.transform(geom, convert)


def load_boundaries() -> tuple[BaseGeometry, gpd.GeoDataFrame]:
    """City and district polygons in EPSG:4490 (WGS84 taken as CGCS2000; they differ by < 1 m)."""
    from cnmaps import get_adm_maps

    # wgs84=False: take 高德's GCJ-02 as stored and convert here, so the treatment is ours and on record
    city = get_adm_maps(city=CITY, level="市", record="first", only_polygon=True, wgs84=False)
    records = get_adm_maps(city=CITY, level="区县", wgs84=False)
    city_geom = shapely.make_valid(gcj_to_wgs(city.geom))
    rows = [{"区县": r["district"], "区划代码": DISTRICT_CODES.get(r["district"], ""), "来源": r["source"],
             "geometry": shapely.make_valid(gcj_to_wgs(r["geometry"].geom))} for r in records]
    districts = gpd.GeoDataFrame(rows, geometry="geometry", crs=4490)
    return city_geom, districts


# ---------------------------------------------------------------- shape helpers


def to_work(geom: BaseGeometry, crs: int = 4490) -> BaseGeometry:
    return gpd.GeoSeries([geom], crs=crs).to_crs(WORK_EPSG).iloc[0]


def lonlat_to_work(lon: float, lat: float) -> tuple[float, float]:
    p = to_work(Point(lon, lat))
    return float(p.x), float(p.y)


def blob(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int = 14) -> BaseGeometry:
    """An irregular, smooth patch: buffered random points around a centre, closed and simplified."""
    pts = rng.normal(0.0, radius * 0.45, size=(n, 2)) + np.array([cx, cy])
    radii = rng.uniform(0.25, 0.55, size=n) * radius
    shape = shapely.union_all(shapely.buffer(shapely.points(pts), radii, quad_segs=8))
    smooth = radius * 0.25  # close then open: fills the necks between circles, rounds the outline
    shape = shape.buffer(smooth, quad_segs=6).buffer(-smooth, quad_segs=6)
    return largest_part(shape.simplify(radius * 0.004))


def snap(geom: BaseGeometry) -> BaseGeometry:
    """Round to 0.1 mm, the survey precision of the 部标 format, so shared vertices match exactly."""
    return shapely.set_precision(geom, GRID)


def largest_part(geom: BaseGeometry) -> BaseGeometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return max(parts, key=lambda p: p.area) if parts else Polygon()


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Drop the lines and points a GEOS overlay can leave behind."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def random_point_in(rng: np.random.Generator, region: BaseGeometry, tries: int = 4000) -> tuple[float, float]:
    """A seeded uniform point inside ``region`` (vectorised rejection sampling)."""
    minx, miny, maxx, maxy = region.bounds
    shapely.prepare(region)
    xs = rng.uniform(minx, maxx, tries)
    ys = rng.uniform(miny, maxy, tries)
    inside = np.flatnonzero(shapely.contains_xy(region, xs, ys))
    if not len(inside):
        raise RuntimeError("could not place a point in the region")
    return float(xs[inside[0]]), float(ys[inside[0]])


def rotated_rect(cx: float, cy: float, w: float, h: float, angle_deg: float) -> Polygon:
    a = np.radians(angle_deg)
    corners = np.array([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return Polygon(corners @ rot.T + (cx, cy))


def wedge(cx: float, cy: float, a0: float, a1: float, reach: float) -> Polygon:
    """A pie slice from (cx, cy) between angles a0..a1 (radians): used to cut a ring into sectors."""
    angles = np.linspace(a0, a1, 8)
    pts = [(cx, cy), *zip(cx + reach * np.cos(angles), cy + reach * np.sin(angles), strict=True)]
    return Polygon(pts)


# ---------------------------------------------------------------- city model (all in EPSG:4548)


@dataclass
class City:
    boundary: BaseGeometry
    districts: gpd.GeoDataFrame  # work CRS
    urban: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    redline: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    zones: dict[str, BaseGeometry] = field(default_factory=dict)
    farmland: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    hazards: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    deliberate: dict[str, list[int]] = field(default_factory=dict)  # conflict group → farmland rows
    extension: BaseGeometry = field(default_factory=Polygon)

    def district(self, name: str) -> BaseGeometry:
        return self.districts.loc[self.districts["区县"] == name].geometry.iloc[0]

    def district_of(self, geom: BaseGeometry) -> str:
        p = geom.representative_point()
        hits = self.districts.loc[self.districts.geometry.contains(p), "区县"]
        return str(hits.iloc[0]) if len(hits) else "市界外"


def build_urban(city: City, seed: int) -> None:
    """Urban development boundary (城镇开发边界): blobs around the seats; they yield to the red line."""
    rng = rng_for(seed, "urban")
    rows = []
    red = city.redline.geometry.union_all()
    for name, district, lon, lat, radius in SEATS:
        x, y = lonlat_to_work(lon, lat)
        if not city.district(district).contains(Point(x, y)):
            x, y = (lambda p: (p.x, p.y))(city.district(district).representative_point())
        shape = blob(rng, x, y, radius, n=18).intersection(city.boundary)
        # the red line and farmland are protected first: the boundary is drawn around the red line
        shape = polygonal(shape.difference(red.buffer(30.0)))
        kind = "集中建设区"
        rows.append({"名称": name, "区县": district, "类型": kind, "geometry": largest_part(shape)})
    city.urban = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)
    city.urban["geometry"] = city.urban.geometry.apply(snap)


def place_away(rng: np.random.Generator, region: BaseGeometry, avoid: BaseGeometry,
               margin: float) -> tuple[float, float]:
    """A point in ``region`` at least ``margin`` from ``avoid`` (falls back to the region alone)."""
    room = region.buffer(-margin * 0.5).difference(avoid.buffer(margin))
    return random_point_in(rng, room if not room.is_empty else region)


def build_redline(city: City, seed: int) -> None:
    """Ecological protection red line (生态保护红线): the Yangtze band plus named mountain/wetland blobs."""
    rng = rng_for(seed, "redline")
    seats = shapely.union_all([Point(*lonlat_to_work(lon, lat)).buffer(r * 1.6)
                               for _, _, lon, lat, r in SEATS])
    zongyang = city.district("枞阳县")
    south = shapely.union_all([city.district(d) for d in ("铜官区", "义安区", "郊区")])
    # The Yangtze runs along the 枞阳县 / south-bank district border: buffer that shared edge.
    river_line = zongyang.boundary.intersection(south.buffer(250.0))
    river = polygonal(river_line.buffer(450.0, quad_segs=4).intersection(city.boundary))
    river = polygonal(river.difference(seats.buffer(-1500.0)))  # the city's own quays stay urban
    rows = [{"名称": RIVER_REDLINE[0], "类型": RIVER_REDLINE[1], "区县": "枞阳县/郊区/义安区",
             "geometry": river}]
    taken = river.union(seats)
    for name, kind, district, radius in REDLINE_BLOBS:
        x, y = place_away(rng, city.district(district), taken, radius * 1.8)
        shape = polygonal(blob(rng, x, y, radius).intersection(city.boundary))
        taken = taken.union(shape.buffer(radius))
        rows.append({"名称": name, "类型": kind, "区县": district, "geometry": shape})
    name, kind, lon, lat, radius = TONGGUANSHAN
    x, y = lonlat_to_work(lon, lat)
    rows.append({"名称": name, "类型": kind, "区县": "铜官区",
                 "geometry": polygonal(blob(rng, x, y, radius).intersection(city.boundary))})
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)
    frame["geometry"] = frame.geometry.apply(snap)
    frame.insert(0, "编号", [f"HX3407{i:03d}" for i in range(1, len(frame) + 1)])
    frame["面积公顷"] = (frame.geometry.area / 10_000).round(4)
    city.redline = frame


def build_zones(city: City, seed: int) -> None:
    """三区: urban space ⊇ urban boundary (+ a deliberate extension over 铜官山), ecological, agricultural."""
    rng = rng_for(seed, "zones")
    red = city.redline.geometry.union_all()
    urban_b = city.urban.geometry.union_all()
    forests = []
    for district, radius in FOREST_BLOBS:
        x, y = place_away(rng, city.district(district), urban_b.union(red), radius * 1.5)
        forests.append(blob(rng, x, y, radius))
    # the urban-space plan was drawn 300 m wider than the boundary but respected the red line ...
    urban_space = urban_b.buffer(300.0).difference(red)
    # ... except at 铜官山, where an older master plan's urban land was carried over onto the red line
    tg = city.redline.loc[city.redline["名称"] == TONGGUANSHAN[0]].geometry.iloc[0]
    c = tg.centroid
    city.extension = box(c.x - 150.0, c.y - 1200.0, c.x + 1600.0, c.y + 1200.0).intersection(tg.buffer(200.0))
    urban_space = polygonal(urban_space.union(city.extension).intersection(city.boundary))
    eco = polygonal(shapely.union_all([red, *forests]).intersection(city.boundary).difference(urban_space))
    agri = polygonal(city.boundary.difference(urban_space).difference(eco))
    city.zones = {"urban_space": snap(urban_space), "agricultural_space": snap(agri),
                  "ecological_space": snap(eco)}


def hexagons(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, cell: float) -> np.ndarray:
    """Irregular six-sided patches, one per grid cell, kept inside their cell so they never overlap.

    Vertex angles stay in order (jitter < half the 60° step), so every patch is star-shaped and valid.
    """
    n = len(cx)
    ox = cx + rng.uniform(-0.05, 0.05, n) * cell
    oy = cy + rng.uniform(-0.05, 0.05, n) * cell
    base = rng.uniform(0.22, 0.43, n) * cell  # ≤ 0.43 + 0.05 < 0.5: stays inside the cell
    angles = np.arange(6) * (np.pi / 3) + rng.uniform(-0.35, 0.35, (n, 6)) + rng.uniform(0, np.pi / 3, (n, 1))
    radii = base[:, None] * rng.uniform(0.7, 1.0, (n, 6))
    xs = ox[:, None] + radii * np.cos(angles)
    ys = oy[:, None] + radii * np.sin(angles)
    coords = np.stack([np.concatenate([xs, xs[:, :1]], 1), np.concatenate([ys, ys[:, :1]], 1)], axis=-1)
    coords = np.round(coords, 4).reshape(-1, 2)
    rings = np.arange(0, 7 * n + 1, 7)
    # from_ragged_array builds all polygons from one flat coordinate buffer (no per-ring arrays)
    polys = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (rings, np.arange(n + 1)))
    return np.asarray(polys, dtype=object)


def density_field(rng: np.random.Generator, bounds: tuple[float, float, float, float],
                  step: float = 500.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A smooth clustered field (sum of Gaussian bumps): farmland gathers on plains, thins on hills.

    Evaluated once on a 500 m lattice and interpolated bilinearly, so millions of cells cost little.
    """
    minx, miny, maxx, maxy = bounds
    k = 40
    bx, by = rng.uniform(minx, maxx, k), rng.uniform(miny, maxy, k)
    sd = rng.uniform(3000.0, 9000.0, k)
    gx, gy = np.arange(minx, maxx + 2 * step, step), np.arange(miny, maxy + 2 * step, step)
    lx, ly = np.meshgrid(gx, gy)
    lattice = np.full(lx.shape, 0.05)
    for i in range(k):  # 40 bumps over a small lattice
        lattice += np.exp(-((lx - bx[i]) ** 2 + (ly - by[i]) ** 2) / (2 * sd[i] ** 2))

    def lookup(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fx, fy = (x - minx) / step, (y - miny) / step
        ix = np.clip(fx.astype(int), 0, len(gx) - 2)
        iy = np.clip(fy.astype(int), 0, len(gy) - 2)
        tx, ty = fx - ix, fy - iy
        top = lattice[iy, ix] * (1 - tx) + lattice[iy, ix + 1] * tx
        bottom = lattice[iy + 1, ix] * (1 - tx) + lattice[iy + 1, ix + 1] * tx
        return np.asarray(top * (1 - ty) + bottom * ty)

    return lookup


BLOCK = 16  # cells per block side in the coarse inside/outside classification


@dataclass
class Cells:
    """Candidate grid cells inside a region: centres and whether they need the exact polygon tests."""

    cx: np.ndarray
    cy: np.ndarray
    near_edge: np.ndarray  # in a block the region's edge crosses: needs the exact test
    near_avoid: np.ndarray  # in a block ``avoid`` reaches: needs the exact test


def candidate_cells(region: BaseGeometry, avoid: BaseGeometry, cell: float) -> Cells:
    """Cell centres inside ``region``, classified block by block so most cells skip exact tests.

    A block whose box, grown by half a cell, lies inside the region holds only cells whose patches
    are inside; a block whose grown box misses the region holds none. Only the remaining blocks'
    cells get the point-in-polygon test here and, once picked, the exact polygon test.
    """
    minx, miny, maxx, maxy = region.bounds
    nx, ny = int(np.ceil((maxx - minx) / cell)), int(np.ceil((maxy - miny) / cell))
    bx, by = int(np.ceil(nx / BLOCK)), int(np.ceil(ny / BLOCK))
    reach = 0.5 * cell
    bi, bj = (a.ravel() for a in np.meshgrid(np.arange(bx), np.arange(by)))
    x0, y0 = minx + bi * BLOCK * cell, miny + bj * BLOCK * cell
    boxes = shapely.box(x0 - reach, y0 - reach, x0 + BLOCK * cell + reach, y0 + BLOCK * cell + reach)
    inner = shapely.contains(region, boxes)
    outer = ~shapely.intersects(region, boxes)
    touches_avoid = shapely.intersects(avoid, boxes) if not avoid.is_empty else np.zeros(len(boxes), bool)
    keep = np.flatnonzero(~outer)
    # cells of the kept blocks: block (i, j) holds cells i*B..i*B+B-1, j*B..j*B+B-1
    off = np.arange(BLOCK)
    ci = (bi[keep, None, None] * BLOCK + off[None, None, :]).repeat(BLOCK, 1)
    cj = (bj[keep, None, None] * BLOCK + off[None, :, None]).repeat(BLOCK, 2)
    block = np.repeat(keep, BLOCK * BLOCK)
    ci, cj = ci.ravel(), cj.ravel()
    valid = (ci < nx) & (cj < ny)
    ci, cj, block = ci[valid], cj[valid], block[valid]
    cx, cy = minx + (ci + 0.5) * cell, miny + (cj + 0.5) * cell
    mixed = ~inner[block]
    inside = np.ones(len(cx), dtype=bool)
    inside[mixed] = shapely.contains_xy(region, cx[mixed], cy[mixed])
    return Cells(cx[inside], cy[inside], mixed[inside], touches_avoid[block][inside])


def grid_patches(rng: np.random.Generator, region: BaseGeometry, count: int, avoid: BaseGeometry,
                 t0: float, max_cell: float = 450.0) -> np.ndarray:
    """``count`` patches inside ``region`` clear of ``avoid``: jittered grid, density-weighted pick.

    Cells are ranked first (Gumbel top-k: a vectorised weighted sample without replacement) and
    polygons are built only for the best-ranked ones, so memory follows ``count``, not the grid.
    """
    if count <= 0:
        return np.empty(0, dtype=object)
    avoid = avoid if not avoid.is_empty else Polygon()
    edge = region.boundary  # one object, prepared once (each .boundary call builds a new one)
    for geom in (region, avoid, edge):
        shapely.prepare(geom)
    field = density_field(rng, region.bounds)
    # about five cells per patch leaves room for the density field to cluster them
    cell = min(float(np.sqrt(region.area / (count * 5.0))), max_cell)
    for _ in range(8):
        cells = candidate_cells(region, avoid, cell)
        keys = 2.0 * np.log(field(cells.cx, cells.cy)) + rng.gumbel(size=len(cells.cx))
        first = min(len(keys), int(count * 1.05) + 64)
        top = np.argpartition(-keys, first - 1)[:first] if first < len(keys) else np.arange(len(keys))
        order = top[np.argsort(-keys[top], kind="stable")]  # best-ranked cells first
        kept: list[np.ndarray] = []
        polys_batches: list[np.ndarray] = []
        got, start = 0, 0
        while got < count and start < len(keys):
            if start >= len(order):  # the first pick was not enough: rank everything
                order = np.argsort(-keys, kind="stable")
            idx = order[start:start + first]
            cand = hexagons(rng, cells.cx[idx], cells.cy[idx], cell)
            ok = np.ones(len(idx), dtype=bool)
            mixed, near = cells.near_edge[idx], cells.near_avoid[idx]
            ok[mixed] = ~shapely.intersects(edge, cand[mixed])  # centre inside + no edge contact
            ok[near] &= ~shapely.intersects(avoid, cand[near])
            kept.append(idx[ok])
            polys_batches.append(cand[ok])
            got += int(ok.sum())
            start += len(idx)
        log(f"farmland grid: cell {cell:.1f} m, {len(keys)} cells, {got} usable for {count} patches", t0)
        if got >= count:
            chosen = np.concatenate(kept)[:count]
            polys = np.concatenate(polys_batches)[:count]
            return polys[np.argsort(chosen, kind="stable")]  # grid order: stable ids, spatially coherent
        cell *= 0.8
    raise RuntimeError(f"cannot fit {count} farmland patches")


def build_farmland(city: City, seed: int, count: int, t0: float) -> None:
    """永久基本农田: ``count`` patches, mostly in agricultural space, plus the deliberate conflicts."""
    rng = rng_for(seed, "farmland")
    red = city.redline.geometry.union_all()
    urban_b = city.urban.geometry.union_all()
    special: dict[str, list[BaseGeometry]] = {}
    # 1. farmland left inside the urban boundary (义安区顺安镇区 edge): the classic 规划打架 case
    shunan = city.urban.loc[city.urban["名称"] == "义安区顺安镇区"].geometry.iloc[0]
    inner = shunan.buffer(-150.0).difference(red.buffer(100.0))
    special["farmland_in_urban_boundary"] = list(
        grid_patches(rng, inner, min(N_FARMLAND_IN_URBAN, max(count // 50, 2)), Polygon(), t0))
    # 2. farmland inside the 白荡湖 red line: the lake-shore paddies mapped by both departments
    bdh = city.redline.loc[city.redline["名称"] == REDLINE_BLOBS[1][0]].geometry.iloc[0]
    special["redline_over_farmland"] = list(
        grid_patches(rng, bdh.buffer(-100.0), min(N_FARMLAND_IN_REDLINE, max(count // 50, 2)), Polygon(), t0))
    # 3. farmland ringing 凤凰山 red line: 3 sectors overlap it by 0.2 m, 1 sector leaves a 0.2 m gap
    fhs = city.redline.loc[city.redline["名称"] == REDLINE_BLOBS[3][0]].geometry.iloc[0]
    c = fhs.centroid
    reach = 20_000.0
    overlap_ring = fhs.buffer(160.0).difference(fhs.buffer(-SLIVER_WIDTH))
    gap_ring = fhs.buffer(160.0).difference(fhs.buffer(SLIVER_WIDTH))
    step = np.pi / 6
    free = city.zones["agricultural_space"]
    sl = [polygonal(overlap_ring.intersection(wedge(c.x, c.y, i * step + 0.02, (i + 1) * step - 0.02, reach))
                    .intersection(free.union(fhs))) for i in range(3)]
    special["sliver_overlap"] = [snap(largest_part(p)) for p in sl if not p.is_empty]
    gap = polygonal(gap_ring.intersection(wedge(c.x, c.y, 6 * step + 0.02, 7 * step - 0.02, reach))
                    .intersection(free))
    special["sliver_gap"] = [snap(largest_part(gap))] if not gap.is_empty else []

    n_special = sum(len(v) for v in special.values())
    taken = shapely.union_all([g for v in special.values() for g in v]).buffer(20.0)
    region = city.zones["agricultural_space"]
    # normal patches: agricultural space only, clear of the lines, hazards-agnostic (hazard is an overlay)
    normal = grid_patches(rng, region, count - n_special, taken.union(red).union(urban_b), t0)
    geoms = list(normal)
    for group, items in special.items():
        city.deliberate[group] = list(range(len(geoms), len(geoms) + len(items)))
        geoms.extend(items)
    geoms_arr = np.asarray(geoms, dtype=object)
    city.farmland = farmland_frame(rng, geoms_arr, city.districts)


def farmland_frame(rng: np.random.Generator, geoms: np.ndarray,
                   districts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Attributes like a 永久基本农田 database: 图斑编号, 地类编码/名称, 面积, 区县 — vectorised."""
    n = len(geoms)
    centre = shapely.centroid(geoms)
    cx, cy = shapely.get_x(centre), shapely.get_y(centre)
    code = np.full(n, "340700", dtype=object)
    for _, row in districts.iterrows():  # four districts, each a vectorised point-in-polygon
        shapely.prepare(row.geometry)
        code[shapely.contains_xy(row.geometry, cx, cy)] = row["区划代码"]
    paddy = rng.random(n) < 0.68  # the Yangtze plain is mostly paddy
    serial = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(7)
    return gpd.GeoDataFrame({
        "图斑编号": pd.Series(code).str.cat(serial).to_numpy(),
        "地类编码": np.where(paddy, "0101", "0103"),
        "地类名称": np.where(paddy, "水田", "旱地"),
        "面积": np.round(shapely.area(geoms), 2),
        "区划代码": code,
        "geometry": geoms,
    }, geometry="geometry", crs=WORK_EPSG)


def build_hazards(city: City, seed: int) -> None:
    """地质灾害高易发区: mining subsidence around the copper mines, slope failures on the hills."""
    rng = rng_for(seed, "hazard")
    urban_core = city.urban.geometry.iloc[0]
    rows = []
    for name, kind, district, radius in HAZARDS:
        region = city.district(district)
        if kind == "地面塌陷":  # the mines lie at the edge of the city centre (铜官山, 狮子山)
            near = urban_core.boundary.buffer(2000.0).intersection(region)
            x, y = random_point_in(rng, near if not near.is_empty else region)
        else:
            x, y = random_point_in(rng, region.buffer(-radius))
        shape = polygonal(blob(rng, x, y, radius, n=10).intersection(city.boundary))
        rows.append({"Name": name, "名称": name, "灾害类型": kind, "易发程度": "高易发", "区县": district,
                     "geometry": shape})
    city.hazards = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)
    city.hazards["geometry"] = city.hazards.geometry.apply(snap)


# ---------------------------------------------------------------- writers


def strip_ldid(dbf: Path) -> None:
    """Zero the DBF language-driver byte (many department files carry no encoding hint at all) and
    stamp the fixed file date, so the zip is byte-identical from run to run."""
    year, month, day = (int(v) for v in FILE_DATE.split("-"))
    with dbf.open("r+b") as fh:
        fh.seek(1)
        fh.write(struct.pack("BBB", year - 1900, month, day))
        fh.seek(29)
        fh.write(struct.pack("B", 0))


def write_redline_zip(frame: gpd.GeoDataFrame, out: Path) -> None:
    """Shapefile zip as a department sends it: EPSG:4527 (zone-prefixed), GBK DBF, no .cpg."""
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / "生态保护红线.shp"
        frame.to_crs(4527).to_file(shp, driver="ESRI Shapefile", encoding="GBK")
        Path(tmp, "生态保护红线.cpg").unlink(missing_ok=True)
        strip_ldid(shp.with_suffix(".dbf"))
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                info = zipfile.ZipInfo(part.name, date_time=(2026, 11, 23, 0, 0, 0))  # stable bytes
                info.flag_bits |= 0x800  # UTF-8 member names
                zf.writestr(info, part.read_bytes(), zipfile.ZIP_DEFLATED)


def write_raster(city: City, path: Path, pixel: float) -> dict[str, Any]:
    """Hazard-susceptibility GeoTIFF (EPSG:4548, uint8): 3 = hazard zones, 2/1 rings, 0 low, 255 outside."""
    import rasterio
    from affine import Affine
    from rasterio.features import rasterize

    minx, miny, maxx, maxy = city.boundary.bounds
    minx, miny = np.floor(minx / pixel) * pixel, np.floor(miny / pixel) * pixel
    width = int(np.ceil((maxx - minx) / pixel))
    height = int(np.ceil((maxy - miny) / pixel))
    transform = Affine(pixel, 0.0, minx, 0.0, -pixel, miny + height * pixel)  # north-up
    hz = city.hazards.geometry.union_all()
    shapes = [(city.boundary, 0), (hz.buffer(1500.0), 1), (hz.buffer(500.0), 2), (hz, 3)]
    data = rasterize(shapes, out_shape=(height, width), transform=transform, fill=255, dtype="uint8")
    outside = rasterize([(city.boundary, 1)], out_shape=(height, width), transform=transform, fill=0,
                        dtype="uint8") == 0
    data[outside] = 255
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
               "crs": CRS.from_epsg(WORK_EPSG), "transform": transform, "nodata": 255, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(1, classes="0=低易发 low,1=中易发 medium,2=较高易发 high,3=高易发 very high")
    return {"pixel_m": pixel, "width": width, "height": height}


def write_layers(city: City, out: Path, t0: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every plan layer in its department's format; returns the manifest 'layers' and 'rasters' entries."""
    ldir = out / "layers"
    ldir.mkdir(parents=True, exist_ok=True)
    write_redline_zip(city.redline, ldir / "ecological_redline.zip")
    layers: list[dict[str, Any]] = [
        entry("layers/ecological_redline.zip", "ecological_redline", "生态保护红线", "ESRI Shapefile (zip)")]
    fpath = ldir / "permanent_farmland.gpkg"
    city.farmland.to_file(fpath, layer="永久基本农田", driver="GPKG", engine="pyogrio", use_arrow=True)
    layers.append(entry("layers/permanent_farmland.gpkg", "permanent_farmland", "永久基本农田", "GPKG",
                        layer="永久基本农田"))
    log(f"farmland written ({len(city.farmland)} patches)", t0)
    city.urban.to_crs(4490).to_file(ldir / "urban_boundary.geojson", driver="GeoJSON",
                                   layer_options={"COORDINATE_PRECISION": 9})
    layers.append(entry("layers/urban_boundary.geojson", "urban_boundary", "城镇开发边界", "GeoJSON"))
    zpath = ldir / "three_zones.gpkg"
    for kind, name in (("urban_space", "城镇空间"), ("agricultural_space", "农业空间"),
                       ("ecological_space", "生态空间")):
        parts = [p for p in shapely.get_parts(city.zones[kind]) if p.area > 1.0]
        frame = gpd.GeoDataFrame({"分区名称": [name] * len(parts), "分区代码": [kind] * len(parts),
                                  "面积": np.round(shapely.area(parts), 2)},
                                 geometry=parts, crs=WORK_EPSG)
        frame.to_file(zpath, layer=name, driver="GPKG")
        layers.append(entry("layers/three_zones.gpkg", kind, name, "GPKG", layer=name))
    city.hazards.to_crs(4326).to_file(ldir / "geohazard_zones.kml", driver="KML")
    layers.append(entry("layers/geohazard_zones.kml", "geohazard_zone", "地质灾害高易发区", "KML"))
    raster = write_raster(city, ldir / "hazard_susceptibility.tif", 100.0)
    rasters = [{"path": "layers/hazard_susceptibility.tif", "kind": "geohazard_zone",
                "name": "地质灾害易发性分区", "crs": None, "format": "GTiff", "band": 1, "zone_value": 3,
                "nodata": 255, "classes": {"0": "低易发", "1": "中易发", "2": "较高易发", "3": "高易发"},
                **raster}]
    return layers, rasters


def entry(path: str, kind: str, name: str, fmt: str, *, layer: str | None = None,
          crs: str | None = None) -> dict[str, Any]:
    return {"path": path, "kind": kind, "name": name, "crs": crs, "layer": layer, "encoding": None,
            "format": fmt}


# ---------------------------------------------------------------- conflicts


def lonlat(geom: BaseGeometry) -> tuple[float, float]:
    p = gpd.GeoSeries([geom.representative_point()], crs=WORK_EPSG).to_crs(4490).iloc[0]
    return round(float(p.x), 6), round(float(p.y), 6)


def conflict(cid: str, kind: str, layers: list[str], geom: BaseGeometry, city: City, description: str,
             **extra: Any) -> dict[str, Any]:
    lon, lat = lonlat(geom)
    return {"id": cid, "type": kind, "layers": layers, "lon": lon, "lat": lat,
            "district": city.district_of(geom), "area_m2": round(float(geom.area), 4),
            "description": description, **extra}


def find_conflicts(city: City) -> list[dict[str, Any]]:
    """Measure each deliberate inter-plan conflict on the generated geometry (nothing assumed)."""
    red = city.redline.geometry.union_all()
    urban_b = city.urban.geometry.union_all()
    fl = city.farmland
    out = []

    def patches(group: str) -> gpd.GeoDataFrame:
        return fl.iloc[city.deliberate.get(group, [])]

    g = patches("farmland_in_urban_boundary")
    if len(g):
        out.append(conflict("C1", "farmland_in_urban_boundary", ["permanent_farmland", "urban_boundary"],
                            g.geometry.union_all().intersection(urban_b), city,
                            "永久基本农田图斑位于城镇开发边界(义安区顺安镇区)内 / farmland patches "
                            "inside the urban development boundary; they also lie in 城镇空间",
                            feature_ids=list(g["图斑编号"])))
    g = patches("redline_over_farmland")
    if len(g):
        out.append(conflict("C2", "redline_over_farmland", ["ecological_redline", "permanent_farmland"],
                            g.geometry.union_all().intersection(red), city,
                            "白荡湖湿地生态保护红线与永久基本农田重叠 / "
                            "red line over farmland patches (lake-shore paddies)",
                            feature_ids=list(g["图斑编号"])))
    g = patches("sliver_overlap")
    if len(g):
        out.append(conflict("C3", "sliver_overlap", ["ecological_redline", "permanent_farmland"],
                            g.geometry.union_all().intersection(red), city,
                            f"凤凰山红线与相邻农田沿共边重叠约{SLIVER_WIDTH} m 的狭长碎片 / "
                            f"{SLIVER_WIDTH} m overlap slivers along the shared edge (to absorb)",
                            width_m=SLIVER_WIDTH, feature_ids=list(g["图斑编号"])))
    g = patches("sliver_gap")
    if len(g):
        gap = g.geometry.union_all().buffer(SLIVER_WIDTH + 0.05).intersection(
            red.buffer(SLIVER_WIDTH + 0.05)).difference(red).difference(g.geometry.union_all())
        out.append(conflict("C4", "sliver_gap", ["ecological_redline", "permanent_farmland"], polygonal(gap),
                            city, f"凤凰山红线与相邻农田之间约{SLIVER_WIDTH} m 的缝隙 / "
                            f"a {SLIVER_WIDTH} m gap along the shared edge (no overlap; to close)",
                            width_m=SLIVER_WIDTH, feature_ids=list(g["图斑编号"])))
    tg = city.redline.loc[city.redline["名称"] == TONGGUANSHAN[0]].geometry.iloc[0]
    out.append(conflict("C5", "zone_contradicts_line", ["urban_space", "ecological_redline"],
                        polygonal(city.zones["urban_space"].intersection(tg)), city,
                        "城镇空间压占铜官山生态保护红线 / 三区 urban space drawn over the 铜官山 red line"))
    return out


# ---------------------------------------------------------------- parcels


KINDS_CHECKED = ("ecological_redline", "permanent_farmland", "urban_boundary", "geohazard_zone")


@dataclass
class ParcelSpec:
    parcel_id: str
    name: str
    expect: str
    geometry: BaseGeometry
    fmt: str = "geojson"  # geojson | bubiao | bubiao_plain | dxf
    note: str = ""


class Placer:
    """Finds spots for demo parcels by testing candidates against the generated layers."""

    def __init__(self, city: City, seed: int) -> None:
        self.city = city
        self.rng = rng_for(seed, "parcels")
        self.layers = {
            "ecological_redline": city.redline.geometry.union_all(),
            "urban_boundary": city.urban.geometry.union_all(),
            "geohazard_zone": city.hazards.geometry.union_all(),
        }
        self.farm = city.farmland.geometry.to_numpy()
        self.tree = shapely.STRtree(self.farm)
        for g in self.layers.values():
            shapely.prepare(g)
        shapely.prepare(city.boundary)

    def hits(self, geom: BaseGeometry, min_area: float = 0.0) -> dict[str, float]:
        """Overlap area per kind (m²), only kinds with overlap > min_area."""
        out = {}
        for kind, g in self.layers.items():
            a = float(geom.intersection(g).area) if g.intersects(geom) else 0.0
            if a > min_area:
                out[kind] = a
        idx = self.tree.query(geom, predicate="intersects")
        a = float(sum(shapely.area(shapely.intersection(self.farm[idx], geom)))) if len(idx) else 0.0
        if a > min_area:
            out["permanent_farmland"] = a
        return out

    def clear(self, geom: BaseGeometry, margin: float = 30.0, *, urban: bool = False) -> bool:
        """No red line, farmland or hazard within ``margin`` m (nor the urban boundary unless ``urban``)."""
        buf = geom.buffer(margin)
        allowed = {"urban_boundary"} if urban else set()
        return not self.hits(buf).keys() - allowed and self.city.boundary.contains(buf)

    def in_urban(self, geom: BaseGeometry) -> bool:
        return bool(self.layers["urban_boundary"].contains(geom))

    def find(self, region: BaseGeometry, size: tuple[float, float], test: Callable[[BaseGeometry], bool],
             tries: int = 600) -> BaseGeometry:
        for _ in range(tries):
            x, y = random_point_in(self.rng, region)
            w = self.rng.uniform(*size)
            g = rotated_rect(x, y, w, w * self.rng.uniform(0.5, 1.0), self.rng.uniform(0, 90))
            if test(g):
                return g
        raise RuntimeError("no spot found for a demo parcel")

    def clean_urban(self, seat: int = 0, size: tuple[float, float] = (80.0, 260.0)) -> BaseGeometry:
        region = self.city.urban.geometry.iloc[seat].buffer(-60.0)
        return self.find(region, size, lambda g: self.in_urban(g) and self.clear(g, urban=True))

    def outside_urban(self) -> BaseGeometry:
        region = self.city.zones["agricultural_space"]
        return self.find(region, (60.0, 150.0), lambda g: self.clear(g, 20.0))

    def across(self, layer: BaseGeometry, size: tuple[float, float] = (100.0, 200.0),
               extra: Callable[[BaseGeometry], bool] = lambda g: True) -> BaseGeometry:
        """A rectangle centred on the edge of ``layer``: part inside, part outside."""
        edge = layer.boundary.intersection(self.city.boundary.buffer(-500.0))
        for _ in range(600):
            p = edge.interpolate(self.rng.uniform(0, edge.length))
            w = self.rng.uniform(*size)
            g = rotated_rect(p.x, p.y, w, w * 0.7, self.rng.uniform(0, 90))
            if 0.1 * g.area < g.intersection(layer).area < 0.9 * g.area and extra(g):
                return g
        raise RuntimeError("no spot across the layer edge")

    def farm_patch(self, pred: Callable[[BaseGeometry], bool]) -> BaseGeometry:
        order = self.rng.permutation(len(self.farm))
        for i in order[:5000]:
            if pred(self.farm[i]):
                return self.farm[i]
        raise RuntimeError("no farmland patch fits")


def longest_edge(patch: BaseGeometry) -> float:
    seg = np.diff(np.asarray(patch.exterior.coords), axis=0)
    return float(np.max(np.hypot(seg[:, 0], seg[:, 1])))


def edge_extrusion(patch: BaseGeometry, depth: float, inset: float) -> Polygon:
    """A rectangle built outward on the longest edge of ``patch``; ``inset`` > 0 pushes it into the patch."""
    coords = np.asarray(patch.exterior.coords)
    seg = np.diff(coords, axis=0)
    i = int(np.argmax(np.hypot(seg[:, 0], seg[:, 1])))
    a, b = coords[i], coords[i + 1]
    d = (b - a) / np.hypot(*(b - a))
    normal = np.array([d[1], -d[0]])
    if Point(*(0.5 * (a + b) + normal)).within(patch):
        normal = -normal  # outward
    a0, b0 = a - normal * inset, b - normal * inset
    return Polygon([tuple(a0), tuple(b0), tuple(b0 + normal * depth), tuple(a0 + normal * depth)])


def make_parcels(city: City, seed: int) -> list[ParcelSpec]:
    """~50 demo parcels, each placed by testing it against the generated layers."""
    pl = Placer(city, seed)
    red = pl.layers["ecological_redline"]
    urban_b = pl.layers["urban_boundary"]
    hz = pl.layers["geohazard_zone"]
    specs: list[ParcelSpec] = []
    number = iter(range(1, 1000))

    def add(name: str, expect: str, geom: BaseGeometry | Callable[[], BaseGeometry] | None,
            fmt: str = "geojson", note: str = "") -> None:
        """Record a parcel; ids are reserved in order even when no spot is found (dense scaled cities)."""
        pid = f"P{next(number):02d}"
        if callable(geom):
            geom = attempt(geom)
        if geom is None:
            print(f"[generate] no spot for demo parcel {pid} {name} ({expect}); skipped", file=sys.stderr)
            return
        specs.append(ParcelSpec(pid, name, expect, geom, fmt, note))

    seats = [0, 0, 0, 0, 1, 2, 3, 3, 0, 0]
    clean_names = ["经开区智能制造产业园", "铜官区滨江安置小区", "市第三人民医院新院区", "铜陵学院实验楼",
                   "顺安镇中心学校", "大通镇游客服务中心", "枞阳县城北污水处理厂", "枞阳县文化中心",
                   "铜陵市档案馆", "狮子山区社区服务中心"]
    for name, seat in zip(clean_names, seats, strict=True):
        add(name, "clean", pl.clean_urban(seat),
            note="城镇开发边界内，无控制线 / inside urban boundary, no line")
    for name in ("老洲镇农机合作社仓库", "钟鸣镇冷链物流中心", "周潭镇光伏电站"):
        add(name, "outside_urban", pl.outside_urban,
            note="城镇开发边界外，无控制线 / outside urban boundary")
    for name in ("浮山景区索道站", "凤凰山旅游度假区酒店", "菜子湖湿地观鸟站", "叶山林场道路"):
        blob_name = {"浮山": REDLINE_BLOBS[0][0], "凤凰": REDLINE_BLOBS[3][0], "菜子": REDLINE_BLOBS[2][0],
                     "叶山": REDLINE_BLOBS[4][0]}[name[:2]]
        layer = city.redline.loc[city.redline["名称"] == blob_name].geometry.iloc[0]
        add(name, "redline", pl.across(layer), note=f"部分压占{blob_name} / partly on the red line")
    inner_red = city.redline.loc[city.redline["名称"] == REDLINE_BLOBS[5][0]].geometry.iloc[0]
    add("大通湿地码头扩建", "redline", pl.find(inner_red.buffer(-200.0), (60.0, 120.0), inner_red.contains),
        note="完全位于红线内 / entirely inside the red line")
    def on_farmland() -> BaseGeometry:
        patch = pl.farm_patch(lambda p: not urban_b.intersects(p.buffer(300.0)) and not red.intersects(
            p.buffer(300.0)) and not hz.intersects(p.buffer(300.0)))
        x, y = centre(patch)
        return rotated_rect(x + 60.0, y, 160.0, 110.0, 15.0)

    for name in ("钟鸣镇农产品加工厂", "胥坝乡仓储基地", "老湾镇农资配送中心", "西联乡物流园"):
        add(name, "farmland", on_farmland,
            note="压占永久基本农田 / on permanent farmland, outside urban boundary")
    urban_farm = city.farmland.iloc[city.deliberate["farmland_in_urban_boundary"][0]].geometry
    c = urban_farm.centroid
    add("顺安镇商住综合体", "farmland", rotated_rect(c.x, c.y, 150.0, 120.0, 30.0),
        note="城镇开发边界内的农田(冲突C1) / on the farmland inside the urban boundary (conflict C1)")
    def only_hazard(g: BaseGeometry) -> bool:
        return not pl.hits(g).keys() - {"geohazard_zone"}

    for name in ("铜官山矿区棚改安置房", "狮子山片区商业中心", "矿区生态修复展示馆"):
        add(name, "geohazard", lambda: pl.across(hz, (120.0, 220.0), only_hazard),
            note="部分位于地质灾害高易发区 / partly in a geohazard zone")
    a, b = pl.clean_urban(0, (60.0, 120.0)), pl.clean_urban(0, (60.0, 120.0))
    add("铜陵市公交停保场(两宗)", "clean", MultiPolygon([a, b]), note="多部件，无控制线 / multipart, clean")
    def two_parts() -> BaseGeometry:
        patch = pl.farm_patch(lambda p: not red.intersects(p.buffer(500.0))
                              and not hz.intersects(p.buffer(500.0)))
        c = patch.centroid
        return MultiPolygon([rotated_rect(c.x, c.y, 100.0, 80.0, 0.0), pl.outside_urban()])

    add("胥坝乡水产养殖基地(两宗)", "farmland", two_parts,
        note="多部件，一部分压占农田 / multipart, one part on farmland")
    outer = pl.clean_urban(0, (220.0, 300.0))
    hole = outer.centroid.buffer(40.0, quad_segs=4)
    add("铜陵市体育公园(含保留水面)", "clean", Polygon(outer.exterior.coords, [hole.exterior.coords]),
        note="带洞，无控制线 / with a hole, clean")
    def ring_road() -> BaseGeometry:
        patch = pl.farm_patch(lambda p: not pl.hits(p.buffer(120.0)).keys() - {"permanent_farmland"} and len(
            pl.tree.query(p.buffer(120.0), predicate="intersects")) == 1)
        ring = patch.buffer(100.0, quad_segs=4)
        return Polygon(ring.exterior.coords, [patch.buffer(5.0, quad_segs=4).exterior.coords])

    add("陈瑶湖镇环形道路工程", "hole_excludes_farmland", ring_road,
        note="洞内为农田图斑，地块本身不压占 / the hole holds a farmland patch; no overlap")
    patch = attempt(lambda: pl.farm_patch(lambda p: not pl.hits(edge_extrusion(p, 60.0, -1.0).buffer(
        20.0)).keys() - {"permanent_farmland"} and len(pl.tree.query(
            edge_extrusion(p, 60.0, -1.0).buffer(2.0), predicate="intersects")) == 1))
    add("钟鸣镇村民活动中心", "touch_farmland", patch and edge_extrusion(patch, 60.0, 0.0),
        note="与农田图斑共边，仅接触 / shares one edge with a farmland patch, touch only")
    inset = max(round(0.5 / longest_edge(patch), 4), 0.0005) if patch else 0.0  # ≈ 0.5 m² overlap
    add("老洲镇粮食烘干房", "tiny_overlap", patch and edge_extrusion(patch, 60.0, inset),
        note="与农田图斑重叠不足1 m² / overlaps the farmland patch by less than 1 m²")
    fhs = city.redline.loc[city.redline["名称"] == REDLINE_BLOBS[4][0]].geometry.iloc[0]
    touch = polygonal(fhs.buffer(60.0, quad_segs=4).difference(fhs).intersection(
        pl.find(fhs.boundary.buffer(30.0), (120.0, 160.0), lambda g: True)))
    add("叶山林场管护站", "touch_redline", largest_part(touch),
        note="与红线共边，仅接触 / shares the red-line edge, touch only")
    add("G3铜陵连接线道路工程", "three_kinds", lambda: corridor(city, pl),
        note="线性工程穿越城镇开发边界、永久基本农田与生态保护红线 / crosses three kinds")
    add("铜陵-安庆交界物流园", "partly_outside_city", lambda: partly_outside(city, pl),
        note="部分位于市界外 / partly outside the city boundary")
    sliver_patch = city.farmland.iloc[city.deliberate["sliver_overlap"][0]].geometry
    c = sliver_patch.intersection(red).representative_point()  # on the 0.2 m strip itself
    add("凤凰山脚农家乐", "redline", rotated_rect(c.x, c.y, 80.0, 60.0, 0.0),
        note="位于红线与农田碎片共边处(冲突C3) / at the red line / farmland sliver (conflict C3)")
    bdh_patch = city.farmland.iloc[city.deliberate["redline_over_farmland"][0]].geometry
    c = bdh_patch.centroid
    add("白荡湖生态农业示范区", "redline", rotated_rect(c.x, c.y, 120.0, 90.0, 10.0),
        note="红线与农田重叠处(冲突C2) / where the red line overlaps farmland (conflict C2)")
    ext = polygonal(city.extension.intersection(red))
    add("铜官山片区开发项目", "redline", largest_part(ext).buffer(-20.0).intersection(
        rotated_rect(ext.centroid.x, ext.centroid.y, 200.0, 150.0, 0.0)),
        note="城镇空间内但压占红线(冲突C5) / in urban space yet on the red line (conflict C5)")
    add("长江铜陵段过江通道", "redline", lambda: river_crossing(city, pl),
        note="线性工程跨越长江红线 / linear crossing of the Yangtze red line")
    add("高标准农田灌溉泵站", "farmland", lambda: pl.farm_patch(
        lambda p: not pl.hits(p.buffer(150.0)).keys() - {"permanent_farmland"}
    ).centroid.buffer(25.0, quad_segs=4),
        note="农业项目位于农田内 / agricultural project inside farmland")
    add("500千伏输变电工程塔基", "farmland", lambda: rotated_rect(*centre(pl.farm_patch(
        lambda p: not pl.hits(p.buffer(400.0)).keys() - {"permanent_farmland"})), 30.0, 30.0, 45.0),
        note="国家重大项目压占农田 / national major project on farmland")
    add("经开区扩区标准厂房", "partly_outside_urban",
        lambda: pl.across(urban_b, (150.0, 250.0), lambda g: not pl.hits(g).keys() - {"urban_boundary"}),
        note="跨城镇开发边界 / straddles the urban development boundary, no other line")
    add("钟鸣镇便民服务点", "near_miss", lambda: edge_extrusion(patch_clear(pl), 50.0, -1.0),
        note="距农田1 m，不接触 / 1 m from farmland, no contact")
    # 部标 TXT (prefixed, GBK) and one unprefixed file, one DXF
    outer = pl.clean_urban(0, (200.0, 260.0))
    add("经开区铜箔产业园(部标)", "clean",
        Polygon(outer.exterior.coords, [outer.centroid.buffer(30.0, quad_segs=3).exterior.coords]), "bubiao",
        note="部标TXT，带洞 / 部标 TXT with a hole")
    add("义安区农田内仓储项目(部标)", "farmland", lambda: rotated_rect(*centre(pl.farm_patch(
        lambda p: not pl.hits(p.buffer(300.0)).keys() - {"permanent_farmland"})), 90.0, 70.0, 20.0), "bubiao")
    add("枞阳县城两宗安置地块(部标)", "clean",
        MultiPolygon([pl.clean_urban(3, (60.0, 100.0)), pl.clean_urban(3, (60.0, 100.0))]), "bubiao",
        note="部标TXT多部件 / 部标 TXT multipart")
    layer = city.redline.loc[city.redline["名称"] == REDLINE_BLOBS[0][0]].geometry.iloc[0]
    add("浮山景区停车场(部标)", "redline", pl.across(layer, (80.0, 140.0)), "bubiao")
    add("铜官区社区卫生服务中心(部标无带号前缀)", "clean", pl.clean_urban(0, (60.0, 120.0)), "bubiao_plain",
        note="部标TXT，东坐标无带号前缀 / eastings without zone prefix (EPSG:4548)")
    add("铜陵港码头仓库(DXF)", "clean", pl.clean_urban(0, (80.0, 150.0)), "dxf",
        note="DXF闭合多段线，无坐标系，声明EPSG:4548 / DXF closed polyline, declare EPSG:4548")
    return [dataclass_round(s) for s in specs]


def attempt(fn: Callable[[], BaseGeometry]) -> BaseGeometry | None:
    """The geometry, or None when the placer finds no spot (very dense scaled farmland)."""
    try:
        return fn()
    except RuntimeError:
        return None


def centre(geom: BaseGeometry) -> tuple[float, float]:
    c = geom.centroid
    return float(c.x), float(c.y)


def dataclass_round(spec: ParcelSpec) -> ParcelSpec:
    """Round to 0.1 mm (the 部标 precision) so every format carries the same coordinates."""
    spec.geometry = shapely.set_precision(spec.geometry, 0.0001, mode="pointwise")
    return spec


def patch_clear(pl: Placer) -> BaseGeometry:
    return pl.farm_patch(lambda p: not pl.hits(edge_extrusion(p, 50.0, -1.0).buffer(30.0)).keys()
                         - {"permanent_farmland"} and len(pl.tree.query(
                             edge_extrusion(p, 50.0, -1.0).buffer(0.5), predicate="intersects")) == 0)


def corridor(city: City, pl: Placer) -> BaseGeometry:
    """A 40 m road corridor from an urban blob into the nearest red line that also crosses farmland."""
    red_rows = city.redline.geometry.to_numpy()
    best: BaseGeometry | None = None
    for seat in city.urban.geometry:
        start = seat.representative_point()
        for target in red_rows:
            end = target.representative_point()
            line = LineString([start, end])
            if line.length > 25_000:
                continue
            g = line.buffer(20.0, cap_style="flat")
            if not city.boundary.contains(g):
                continue
            h = pl.hits(g, 1.0)
            shorter = best is None or g.area < best.area
            if {"ecological_redline", "permanent_farmland", "urban_boundary"} <= h.keys() and shorter:
                best = g
    if best is None:
        raise RuntimeError("no corridor crosses urban boundary, farmland and red line")
    return best


def river_crossing(city: City, pl: Placer) -> BaseGeometry:
    """A 30 m bridge corridor straight across the Yangtze red-line band, 400 m beyond each side."""
    river = city.redline.geometry.iloc[0]
    for _ in range(400):
        p = river.representative_point() if _ == 0 else Point(*random_point_in(pl.rng, river))
        for angle in np.linspace(0, np.pi, 12, endpoint=False):
            d = np.array([np.cos(angle), np.sin(angle)])
            mid = np.array(p.coords[0])
            line = LineString([tuple(mid - d * 1500), tuple(mid + d * 1500)])
            g = line.buffer(15.0, cap_style="flat")
            inside = g.intersection(river)
            other = pl.hits(g, 1.0).keys() - {"ecological_redline", "permanent_farmland"}
            if city.boundary.contains(g) and 0.2 * g.area < inside.area < 0.8 * g.area and \
                    inside.geom_type == "Polygon" and not other:
                return g
    raise RuntimeError("no river crossing found")


def partly_outside(city: City, pl: Placer) -> BaseGeometry:
    """A block straddling the city boundary, away from every control line."""
    edge = city.boundary.boundary
    for _ in range(600):
        p = edge.interpolate(pl.rng.uniform(0, edge.length))
        g = rotated_rect(p.x, p.y, 200.0, 150.0, pl.rng.uniform(0, 90))
        inside = g.intersection(city.boundary).area
        if 0.3 * g.area < inside < 0.7 * g.area and not pl.hits(g):
            return g
    raise RuntimeError("no spot on the city edge")


def write_parcels(specs: list[ParcelSpec], city: City, out: Path,
                  codes: dict[str, str]) -> list[dict[str, Any]]:
    pdir = out / "parcels"
    pdir.mkdir(parents=True, exist_ok=True)
    pl = Placer(city, 0)
    frame = gpd.GeoDataFrame({
        "parcel_id": [s.parcel_id for s in specs], "name": [s.name for s in specs],
        "project_code": [codes.get(s.parcel_id, "") for s in specs],
        "expect": [s.expect for s in specs], "format": [s.fmt for s in specs],
        "note": [s.note for s in specs],
        "hits": [",".join(sorted(pl.hits(s.geometry, 1.0))) for s in specs],
        "in_urban_boundary": [bool(pl.in_urban(s.geometry)) for s in specs],
    }, geometry=[s.geometry for s in specs], crs=WORK_EPSG)
    entries = []
    gj = frame.loc[frame["format"] == "geojson"]
    gj.to_crs(4326).drop(columns=["format"]).to_file(pdir / "demo_parcels.geojson", driver="GeoJSON",
                                                     layer_options={"COORDINATE_PRECISION": 10})
    entries.append({"path": "parcels/demo_parcels.geojson", "format": "GeoJSON", "crs": None,
                    "parcel_ids": list(gj["parcel_id"])})
    header = {"数据产生单位": "铜陵市自然资源和规划局(演示数据)", "数据产生日期": FILE_DATE}
    bb = frame.loc[frame["format"] == "bubiao"]
    write_bubiao(bb.assign(use="建设用地", land_code="", sheet=""), pdir / "bubiao_batch.txt", header=header)
    entries.append({"path": "parcels/bubiao_batch.txt", "format": "bubiao", "crs": None, "encoding": None,
                    "parcel_ids": list(bb["parcel_id"])})
    plain = frame.loc[frame["format"] == "bubiao_plain"]
    write_bubiao(plain.assign(use="建设用地", land_code="", sheet=""), pdir / "bubiao_no_prefix.txt",
                 header=header, zone_prefix=False)
    entries.append({"path": "parcels/bubiao_no_prefix.txt", "format": "bubiao", "crs": None, "encoding": None,
                    "parcel_ids": list(plain["parcel_id"])})
    dxf = frame.loc[frame["format"] == "dxf"]
    write_dxf(dxf, pdir / "parcel_dxf.dxf")
    entries.append({"path": "parcels/parcel_dxf.dxf", "format": "DXF", "crs": f"EPSG:{WORK_EPSG}",
                    "parcel_ids": list(dxf["parcel_id"])})
    frame.to_crs(4326).to_file(pdir / "all_parcels_expected.geojson", driver="GeoJSON",
                               layer_options={"COORDINATE_PRECISION": 10})
    return entries


def write_dxf(frame: gpd.GeoDataFrame, path: Path) -> None:
    """Closed LWPOLYLINEs in EPSG:4548 metres on a layer named after the parcel id (DXF has no CRS)."""
    import ezdxf

    doc = ezdxf.new("R2010")  # type: ignore[attr-defined]
    doc.header["$INSUNITS"] = 6  # metres
    msp = doc.modelspace()
    for _, row in frame.iterrows():
        doc.layers.add(row["parcel_id"])
        for part in shapely.get_parts(row.geometry):
            for ring in [part.exterior, *part.interiors]:
                msp.add_lwpolyline(list(ring.coords)[:-1], close=True, dxfattribs={"layer": row["parcel_id"]})
    doc.saveas(path)


# ---------------------------------------------------------------- projects


PROJECT_TYPES = {  # project type → (GB/T 4754 industry code, approval type 01 审批 / 02 核准 / 03 备案)
    "industrial": ("39", "03"), "residential": ("70", "03"), "public_facility": ("84", "01"),
    "linear_infrastructure": ("48", "01"), "national_major": ("44", "02"), "agricultural": ("01", "03"),
}
PROJECT_GROUP = {  # finer project type (checks/rules.toml) → its group, whose codes the project code uses
    "manufacturing": "industrial", "logistics_storage": "industrial", "urban_housing": "residential",
    "resettlement_housing": "residential", "civic_facility": "public_facility",
    "tourism_facility": "public_facility", "rural_revitalisation": "public_facility",
    "transport_line": "linear_infrastructure", "national_key_infrastructure": "national_major",
    "planting_facility": "agricultural", "livestock_facility": "agricultural",
}
APPLICANTS = ("铜陵市城市建设投资集团有限公司", "铜陵有色金属集团控股有限公司", "铜陵经济技术开发区管委会",
              "义安区人民政府", "枞阳县交通运输局", "国网安徽省电力有限公司铜陵供电公司", "铜陵市农业农村局",
              "铜陵市教育局", "郊区大通镇人民政府", "铜陵市卫生健康委员会")

PROJECT_PLAN: tuple[tuple[str, str, tuple[str, ...]], ...] = (  # (name, project type, parcel ids)
    # finer types of checks/rules.toml where one fits (周潭镇光伏电站 keeps its group: either level is valid)
    ("经开区智能制造产业园项目", "manufacturing", ("P01",)),
    ("铜官区滨江安置小区项目", "resettlement_housing", ("P02",)),
    ("市第三人民医院新院区建设项目", "civic_facility", ("P03",)),
    ("铜陵学院实验楼及顺安镇中心学校建设项目", "civic_facility", ("P04", "P05")),
    ("枞阳县城北污水处理厂及文化中心项目", "civic_facility", ("P07", "P08")),
    ("镇域冷链物流与农机仓储项目", "logistics_storage", ("P11", "P12")),
    ("周潭镇光伏电站项目", "industrial", ("P13",)),
    ("浮山及凤凰山旅游配套设施项目", "tourism_facility", ("P14", "P15", "P47")),
    ("钟鸣镇农产品加工厂项目", "manufacturing", ("P19", "P20")),
    ("顺安镇商住综合体项目", "urban_housing", ("P23",)),
    ("铜官山矿区棚户区改造安置房项目", "resettlement_housing", ("P24", "P25")),
    ("胥坝乡水产养殖基地项目", "livestock_facility", ("P28", "P40")),
    ("陈瑶湖镇环形道路工程", "transport_line", ("P30",)),
    ("钟鸣镇村民活动中心项目", "rural_revitalisation", ("P31",)),
    ("老洲镇粮食烘干房项目", "planting_facility", ("P32",)),
    ("G3铜陵连接线道路工程", "transport_line", ("P34",)),
    ("长江铜陵段过江通道工程", "transport_line", ("P39",)),
    ("500千伏输变电工程", "national_key_infrastructure", ("P41",)),
    ("经开区铜箔产业园及扩区标准厂房项目", "manufacturing", ("P42", "P44")),
    ("枞阳县城安置地块项目", "resettlement_housing", ("P46",)),
    ("铜陵港码头仓库及社区卫生服务中心项目", "civic_facility", ("P48", "P49")),
    ("白荡湖生态农业示范区项目", "planting_facility", ("P37",)),
    ("铜官山片区开发项目", "urban_housing", ("P38",)),
)


def make_projects(specs: list[ParcelSpec], city: City) -> list[dict[str, Any]]:
    by_id = {s.parcel_id: s for s in specs}
    projects = []
    for serial, (name, ptype, pids) in enumerate(PROJECT_PLAN, start=101):
        pids = tuple(p for p in pids if p in by_id)
        district = city.district_of(by_id[pids[0]].geometry) if pids else "铜官区"
        industry, approval = PROJECT_TYPES[PROJECT_GROUP.get(ptype, ptype)]
        code = f"2026-{DISTRICT_CODES.get(district, '340700')}-{industry}-{approval}-{serial:06d}"
        projects.append({"code": code, "name": name, "project_type": ptype,
                         "applicant": APPLICANTS[serial % len(APPLICANTS)], "district": district,
                         "parcel_ids": list(pids)})
    return projects


# ---------------------------------------------------------------- detailed plan, regional assessments


def write_planning(city: City, specs: list[ParcelSpec], projects: list[dict[str, Any]], out: Path,
                   seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """控规地块 (GeoPackage) and 区域评估 (GeoJSON, EPSG:4490) written, demo projects given their declared
    plan; returns the manifest layer entries and the deliberate plan-vs-boundary conflicts."""
    from layers.land_use import load_land_use_codes

    avoid = shapely.STRtree(np.concatenate([city.redline.geometry.to_numpy(),
                                            city.farmland.geometry.to_numpy()]))
    seats = [lonlat_to_work(lon, lat) for _name, _district, lon, lat, _radius in SEATS]
    plan = planning.build_detailed_plan(rng_for(seed, "detailed_plan"), city.urban, seats, avoid,
                                        city.zones["agricultural_space"], snap)
    by_id = {s.parcel_id: s.geometry for s in specs}
    plan = planning.fit_to_projects(plan, by_id, rng_for(seed, "detailed_plan_fit"))
    planning.declare_projects(projects, plan, by_id)
    ldir = out / "layers"
    plan.to_file(ldir / "detailed_plan.gpkg", layer="控规地块", driver="GPKG")
    assessments = planning.build_assessments(city.urban, city.boundary, snap)
    assessments.to_crs(4490).to_file(ldir / "regional_assessments.geojson", driver="GeoJSON",
                                     layer_options={"COORDINATE_PRECISION": 9})
    entries = [entry("layers/detailed_plan.gpkg", "detailed_plan", "控制性详细规划地块", "GPKG",
                     layer="控规地块"),
               entry("layers/regional_assessments.geojson", "regional_assessment", "区域评估成果", "GeoJSON")]
    codes = load_land_use_codes()
    found = planning.plan_conflicts(plan, city.urban.geometry.union_all(),
                                    lambda code: not codes.in_group(code, "urban_construction"))
    conflicts = [conflict(f"C{6 + i}", "plan_use_outside_urban_boundary",
                          ["detailed_plan", "urban_boundary"], f["geometry"], city,
                          f"控规地块 {f['feature_id']}（{codes.get(f['land_use']).name_zh}，{f['land_use']}）"
                          "规划为城镇建设用地，却位于城镇开发边界外", feature_ids=[f["feature_id"]])
                 for i, f in enumerate(found)]
    return entries, conflicts


# ---------------------------------------------------------------- driver


def geometry_checksum(geoms: gpd.GeoSeries | Iterable[BaseGeometry]) -> str:
    """sha256 over WKB: identical geometries give identical checksums (used by the tests)."""
    arr = geoms.to_numpy() if isinstance(geoms, gpd.GeoSeries) else np.asarray(list(geoms), dtype=object)
    wkb = shapely.to_wkb(arr, hex=False, output_dimension=2)
    return hashlib.sha256(b"".join(wkb.tolist())).hexdigest()


def generate(out: Path, *, seed: int = DEFAULT_SEED, farmland: int = DEFAULT_FARMLAND) -> dict[str, Any]:
    """Write the demo city into ``out`` and return the manifest (also written as manifest.json)."""
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists():
        for sub in ("layers", "parcels"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    city_ll, districts_ll = load_boundaries()
    gpd.GeoDataFrame({"名称": [CITY], "区划代码": ["340700"], "来源": ["高德 via cnmaps, GCJ-02→WGS84"]},
                     geometry=[city_ll], crs=4490).to_file(out / "city_boundary.geojson", driver="GeoJSON")
    districts_ll.to_file(out / "districts.geojson", driver="GeoJSON")
    log("boundaries loaded and written", t0)
    city = City(boundary=snap(to_work(city_ll)), districts=districts_ll.to_crs(WORK_EPSG))
    build_redline(city, seed)
    build_urban(city, seed)
    build_zones(city, seed)
    log("red line, urban boundary, three zones built", t0)
    build_farmland(city, seed, farmland, t0)
    log(f"farmland built ({len(city.farmland)} patches)", t0)
    build_hazards(city, seed)
    layers, rasters = write_layers(city, out, t0)
    log("layers written", t0)
    conflicts = find_conflicts(city)
    specs = make_parcels(city, seed)
    projects = make_projects(specs, city)
    planned, plan_found = write_planning(city, specs, projects, out, seed)
    layers += planned
    conflicts += plan_found
    log(f"detailed plan and regional assessments written ({len(plan_found)} plan parcels outside the urban "
        "boundary)", t0)
    codes = {pid: p["code"] for p in projects for pid in p["parcel_ids"]}
    parcel_entries = write_parcels(specs, city, out, codes)
    (out / "projects.json").write_text(json.dumps(projects, ensure_ascii=False, indent=2) + "\n", "utf-8")
    log(f"{len(specs)} parcels, {len(projects)} projects written", t0)
    manifest = {
        "seed": seed, "farmland": farmland, "work_crs": f"EPSG:{WORK_EPSG}",
        "boundary": "city_boundary.geojson", "districts": "districts.geojson",
        "boundary_source": "cnmaps (高德, GCJ-02) converted to WGS84 with eviltransform.gcj2wgs_exact; "
                           "WGS84 taken as CGCS2000 (EPSG:4490), difference < 1 m",
        "layers": layers, "rasters": rasters, "parcels": parcel_entries, "projects": "projects.json",
        "conflicts": conflicts,
        "checksums": {
            "farmland": geometry_checksum(city.farmland.geometry),
            "redline": geometry_checksum(city.redline.geometry),
            "urban_boundary": geometry_checksum(city.urban.geometry),
            "parcels": geometry_checksum(s.geometry for s in specs),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
    log(f"done in {time.perf_counter() - t0:.1f}s → {out}", t0)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Tongling demo city (一张蓝图 demo data).")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "demo")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--farmland", type=int, default=DEFAULT_FARMLAND, help="number of farmland patches")
    args = parser.parse_args(argv)
    generate(args.out, seed=args.seed, farmland=args.farmland)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
