"""checks.batch_fast: overlap AREAS of many parcels with the blueprint, without overlap geometries.

The batch table needs, per parcel × effective kind, the overlap area in the plane and on the ellipsoid,
never the overlap polygon. So instead of one GEOS overlay per (parcel, piece) pair plus a per-kind
union (what ``Screener.overlaps`` does for a single submission, which must return geometry):

* one STRtree bulk query gives every candidate pair of a chunk;
* for a convex parcel (the usual case: a construction parcel is a convex quadrilateral), every ring of
  every candidate piece is clipped by the parcel with Sutherland–Hodgman, vectorised in numpy over all
  pairs at once (one pass per parcel edge). Clipping a ring — convex or not — by a convex polygon gives a
  ring whose winding number is the original one times the indicator of the polygon, so its shoelace
  area is exactly area(ring ∩ parcel); exterior rings add, holes subtract. Coordinates are shifted to a
  per-pair origin first, so the shoelace does not lose digits to the 10⁶ m GK coordinates;
* pairs of non-convex parcels (holes, multipart, concave) go through GEOS ``shapely.intersection``;
* ellipsoidal areas: the clipped vertices are reprojected to CGCS2000 lon/lat (the same transformer as
  ``checks.areas``), mapped to the authalic sphere of the CGCS2000 ellipsoid (equal-area), and each ring's
  area is summed edge by edge with the spherical-trapezoid formula, vectorised. On 10⁴ parcel-sized
  overlaps it agrees with ``checks.areas.ellipsoidal_areas`` (Karney's geodesic polygon area, per ring in
  a Python loop) to < 1e-4 m² (≈5e-8 relative at worst), i.e. below the 1e-4 m² the table rounds to;
* per (parcel, kind) sums replace the unions (pieces are disjoint, so the areas add); a kind that covers
  the whole parcel reports the parcel's own areas, as the engine does.

Per blueprint (cached per Screener, built lazily in each process): the pieces' rings as flat arrays, and
the pieces' feature sets (checks.batch_sources: parsed once per version, or read from the data dir).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from checks.areas import CGCS2000_A, CGCS2000_INVF, ellipsoidal_areas
from checks.batch_sources import FeatureSets, load_or_build, sorted_unique
from checks.engine import NOISE_M2, Screener
from layers.crs import CGCS2000, transformer

CONVEX_RTOL = 1e-12  # a parcel whose convex hull is this much larger (relative) still counts as convex
MAX_CLIP_EDGES = 64  # convex parcels with more hull edges than this go through GEOS instead

# authalic sphere of the CGCS2000 ellipsoid: equal-area, so areas on it are ellipsoidal areas
_F = 1.0 / CGCS2000_INVF
_E2 = _F * (2 - _F)
_E = float(np.sqrt(_E2))


def _q(phi: NDArray[np.float64]) -> NDArray[np.float64]:
    s = np.sin(phi)
    return np.asarray((1 - _E2) * (s / (1 - _E2 * s * s) - np.log((1 - _E * s) / (1 + _E * s)) / (2 * _E)))


_QP = float(_q(np.asarray([np.pi / 2]))[0])
_RQ2 = CGCS2000_A * CGCS2000_A * _QP / 2  # authalic radius squared


@dataclass
class BatchIndex:
    """Per-blueprint arrays for the area-only batch path."""

    ring_start: NDArray[np.int64]  # piece p's rings: ring_start[p]:ring_start[p + 1]
    coord_start: NDArray[np.int64]  # ring r's vertices (no closing one): coord_start[r]:coord_start[r + 1]
    xy: NDArray[np.float64]  # (n, 2) ring vertices
    weight: NDArray[np.float64]  # per ring: ±1 so weight × signed shoelace is +area (exterior) / −area (hole)
    sets: FeatureSets | None = None  # each piece's kind → source feature set (checks.batch_sources)


_indexes: weakref.WeakKeyDictionary[Screener, BatchIndex] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def batch_index(screener: Screener) -> BatchIndex:
    """The screener's BatchIndex, built on first use in this process."""
    with _lock:
        found = _indexes.get(screener)
        if found is None:
            found = _indexes[screener] = _build_index(screener)
        return found


def feature_sets(screener: Screener, directory: Path | None = None) -> FeatureSets:
    """The screener's piece feature sets: loaded from ``directory`` (the version's directory in the data
    dir) when saved there for these pieces, else parsed once in this process (and saved there)."""
    index = batch_index(screener)
    with _lock:
        if index.sets is None:
            index.sets = load_or_build(directory, screener._piece_ids, screener._sources)
        return index.sets


def _build_index(screener: Screener) -> BatchIndex:
    geoms = screener._geoms
    # geoarrow-style ragged arrays: no intermediate GEOS objects (get_parts / get_rings cost ≈2× more)
    gtype, coords, offsets = shapely.to_ragged_array(geoms)
    if gtype == shapely.GeometryType.POLYGON:
        bounds, part_rings = offsets  # coords per ring, rings per polygon (one part per piece)
        geom_parts = np.arange(len(geoms) + 1)
    else:
        bounds, part_rings, geom_parts = offsets
    n_rings = len(bounds) - 1
    ring_part = np.repeat(np.arange(len(part_rings) - 1), np.diff(part_rings))
    ring_piece = np.repeat(np.arange(len(geoms)), np.diff(geom_parts))[ring_part]
    keep = np.ones(len(coords), dtype=bool)
    keep[bounds[1:] - 1] = False  # drop each ring's closing vertex
    xy = np.ascontiguousarray(coords[keep])
    coord_start = (bounds - np.arange(n_rings + 1)).astype(np.int64)
    owner = np.repeat(np.arange(n_rings), np.diff(coord_start))
    signed = _shoelace(xy[:, 0], xy[:, 1], owner, coord_start, n_rings)
    exterior = np.zeros(n_rings, dtype=bool)
    exterior[part_rings[:-1][np.diff(part_rings) > 0]] = True
    weight = np.where(signed >= 0, 1.0, -1.0) * np.where(exterior, 1.0, -1.0)
    ring_start = np.searchsorted(ring_piece, np.arange(len(geoms) + 1)).astype(np.int64)
    return BatchIndex(ring_start, coord_start, xy, weight)


def _shoelace(x: NDArray[np.float64], y: NDArray[np.float64], ring: NDArray[np.int64],
              start: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """Signed area per ring of flat, unclosed rings (ring r = start[r]:start[r+1]), each vertex taken
    relative to its ring's first vertex."""
    if len(x) == 0:
        return np.zeros(n)
    first = start[:-1][ring]
    lx, ly = x - x[first], y - y[first]
    prev = _prev(ring)
    return np.bincount(ring, weights=lx[prev] * ly - lx * ly[prev], minlength=n) / 2.0


# --- clipping -------------------------------------------------------------------------------------

@dataclass
class _Rings:
    """Flat rings: vertices (x, y) in order, ``ring`` id per vertex (non-decreasing)."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    ring: NDArray[np.int64]


def _prev(ring: NDArray[np.int64]) -> NDArray[np.int64]:
    """Index of each vertex's predecessor inside its (cyclic) ring."""
    n = len(ring)
    prev = np.arange(-1, n - 1)
    if n == 0:
        return prev
    start = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    end = np.r_[start[1:], n] - 1
    prev[start] = end
    return prev


def _clip_step(r: _Rings, ax: NDArray[np.float64], ay: NDArray[np.float64], dx: NDArray[np.float64],
               dy: NDArray[np.float64]) -> _Rings:
    """Sutherland–Hodgman by one half-plane per ring (left of a + t·d), all rings at once."""
    if len(r.x) == 0:
        return r
    d = dx[r.ring] * (r.y - ay[r.ring]) - dy[r.ring] * (r.x - ax[r.ring])
    inside = d >= 0
    prev = _prev(r.ring)
    cross = inside != inside[prev]
    count = inside.astype(np.int64) + cross
    total = int(count.sum())
    pos = np.cumsum(count) - count  # first output slot of each vertex
    x = np.empty(total)
    y = np.empty(total)
    ring = np.repeat(r.ring, count)
    c = np.flatnonzero(cross)  # crossing edge prev[c] → c: its intersection comes first
    p = prev[c]
    t = d[p] / (d[p] - d[c])
    x[pos[c]] = r.x[p] + t * (r.x[c] - r.x[p])
    y[pos[c]] = r.y[p] + t * (r.y[c] - r.y[p])
    k = np.flatnonzero(inside)
    slot = pos[k] + cross[k]
    x[slot] = r.x[k]
    y[slot] = r.y[k]
    return _Rings(x, y, ring)


def _clip_convex(rings: _Rings, ring_pair: NDArray[np.int64], hull_x: NDArray[np.float64],
                 hull_y: NDArray[np.float64], hull_n: NDArray[np.int64]) -> _Rings:
    """Clip every ring by its pair's convex CCW polygon (hull_x/hull_y: (pairs, K+1) padded closed
    rings, hull_n: edges per pair; missing edges repeat the last one, which changes nothing)."""
    steps = int(hull_n.max()) if len(hull_n) else 0
    for s in range(steps):
        e = np.minimum(s, hull_n - 1)
        rows = np.arange(len(hull_n))
        ax, ay = hull_x[rows, e], hull_y[rows, e]
        dx, dy = hull_x[rows, e + 1] - ax, hull_y[rows, e + 1] - ay
        rings = _clip_step(rings, ax[ring_pair], ay[ring_pair], dx[ring_pair], dy[ring_pair])
    return rings


# --- areas of flat rings ------------------------------------------------------------------------

def _ring_areas(r: _Rings, ox: NDArray[np.float64], oy: NDArray[np.float64], n: int, crs: CRS
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Signed plane and ellipsoidal areas per ring id < n; (ox, oy) per ring: the origin the local
    coordinates r.x, r.y are relative to. Both signs follow the ring's orientation (CCW positive)."""
    if len(r.x) == 0:
        return np.zeros(n), np.zeros(n)
    prev = _prev(r.ring)
    plane = np.bincount(r.ring, weights=r.x[prev] * r.y - r.x * r.y[prev], minlength=n) / 2.0
    lon, lat = transformer(crs, CGCS2000).transform(r.x + ox[r.ring], r.y + oy[r.ring])
    lam = np.radians(np.asarray(lon))
    t = np.tan(np.arcsin(np.clip(_q(np.radians(np.asarray(lat))) / _QP, -1.0, 1.0)) / 2)
    dl = lam - lam[prev]
    dl = np.where(dl > np.pi, dl - 2 * np.pi, np.where(dl < -np.pi, dl + 2 * np.pi, dl))
    excess = 2 * np.arctan2(np.tan(dl / 2) * (t + t[prev]), 1 + t * t[prev])
    ell = -_RQ2 * np.bincount(r.ring, weights=excess, minlength=n).astype(np.float64)  # CCW sums negative
    return plane, ell


# --- per-pair areas ------------------------------------------------------------------------------

# hull rings: closed CCW rings' (x, y) rows; parcel p's are rows start[p]:start[p + 1] (none if not convex)
HullRings = tuple[NDArray[np.float64], NDArray[np.int64]]


def _convex_hulls(geoms: NDArray[np.object_]) -> tuple[NDArray[np.bool_], HullRings]:
    """Which parcels are convex polygons (clip directly) and their CCW hull rings (none for the others)."""
    hulls = shapely.orient_polygons(shapely.convex_hull(geoms), exterior_cw=False)
    types = shapely.get_type_id(geoms)
    area = shapely.area(geoms)
    ok = ((types == 3) & (shapely.get_num_interior_rings(geoms) == 0) & (area > 0)
          & (shapely.get_type_id(hulls) == 3)
          & (shapely.area(hulls) <= area * (1 + CONVEX_RTOL)))
    n_edges = np.where(ok, shapely.get_num_coordinates(hulls) - 1, 0)
    ok &= n_edges <= MAX_CLIP_EDGES
    coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(hulls[ok]), return_index=True)
    counts = np.zeros(len(geoms), dtype=np.int64)
    counts[ok] = np.bincount(owner, minlength=int(ok.sum()))
    return ok, (coords, np.r_[0, np.cumsum(counts)].astype(np.int64))


def pair_areas(screener: Screener, index: BatchIndex, geoms: NDArray[np.object_],
               pair_parcel: NDArray[np.int64], pair_piece: NDArray[np.int64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Plane and ellipsoidal area of parcel ∩ piece for each pair."""
    npairs = len(pair_parcel)
    area = np.zeros(npairs)
    ell = np.zeros(npairs)
    if npairs == 0:
        return area, ell
    convex, hull_rings = _convex_hulls(geoms)
    fast = convex[pair_parcel]
    if fast.any():
        a, e = _convex_pair_areas(screener, index, geoms, hull_rings, pair_parcel[fast], pair_piece[fast])
        area[fast], ell[fast] = a, e
    slow = np.flatnonzero(~fast)
    if len(slow):
        inter = shapely.intersection(geoms[pair_parcel[slow]], screener._geoms[pair_piece[slow]])
        area[slow] = shapely.area(inter)
        polys = shapely.get_type_id(inter)
        poly = (polys == 3) | (polys == 6)
        ell[slow[poly]] = ellipsoidal_areas(inter[poly], screener.crs)
        for i in np.flatnonzero(~poly & (area[slow] > 0)):  # collections: their polygonal part only
            parts = shapely.get_parts(inter[i])
            parts = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
            area[slow[i]] = float(shapely.area(parts).sum())
            ell[slow[i]] = float(ellipsoidal_areas(parts, screener.crs).sum())
    return area, ell


def _local_hulls(geoms: NDArray[np.object_], hull_rings: HullRings, pair_parcel: NDArray[np.int64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float64],
                            NDArray[np.float64]]:
    """Per parcel: hull rings padded to the longest one (the last vertex repeated), relative to each
    parcel's first hull vertex; edges per hull; that origin (rows of parcels without pairs unset)."""
    coords, start = hull_rings
    used = pair_parcel[np.r_[True, pair_parcel[1:] != pair_parcel[:-1]]]  # pairs come sorted by parcel
    m = start[used + 1] - start[used]
    k = int(m.max())
    at = start[used][:, None] + np.minimum(np.arange(k)[None, :], m[:, None] - 1)
    hx = np.empty((len(geoms), k))
    hy = np.empty((len(geoms), k))
    hn = np.zeros(len(geoms), dtype=np.int64)
    hx[used], hy[used], hn[used] = coords[at, 0], coords[at, 1], m - 1
    ox, oy = hx[:, 0].copy(), hy[:, 0].copy()
    hx -= ox[:, None]
    hy -= oy[:, None]
    return hx, hy, hn, ox, oy


def _convex_pair_areas(screener: Screener, index: BatchIndex, geoms: NDArray[np.object_],
                       hull_rings: HullRings, pair_parcel: NDArray[np.int64],
                       pair_piece: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    npairs = len(pair_parcel)
    # the rings of each pair's piece, flattened: ring r of the batch belongs to pair ring_pair[r]
    nr = index.ring_start[pair_piece + 1] - index.ring_start[pair_piece]
    ring_pair = np.repeat(np.arange(npairs, dtype=np.int64), nr)
    ring_src = np.repeat(index.ring_start[pair_piece] - np.cumsum(nr) + nr, nr) + np.arange(int(nr.sum()))
    nv = index.coord_start[ring_src + 1] - index.coord_start[ring_src]
    vert_ring = np.repeat(np.arange(len(ring_src), dtype=np.int64), nv)
    vert_src = np.repeat(index.coord_start[ring_src] - np.cumsum(nv) + nv, nv) + np.arange(int(nv.sum()))
    hx, hy, hn, ox, oy = _local_hulls(geoms, hull_rings, pair_parcel)
    pox, poy = ox[pair_parcel], oy[pair_parcel]
    rings = _Rings(index.xy[vert_src, 0] - pox[ring_pair[vert_ring]],
                   index.xy[vert_src, 1] - poy[ring_pair[vert_ring]], vert_ring)
    clipped = _clip_convex(rings, ring_pair, hx[pair_parcel], hy[pair_parcel], hn[pair_parcel])
    plane, ell = _ring_areas(clipped, pox[ring_pair], poy[ring_pair], len(ring_src), screener.crs)
    w = index.weight[ring_src]
    area = np.bincount(ring_pair, weights=w * plane, minlength=npairs)
    ellipsoidal = np.bincount(ring_pair, weights=w * ell, minlength=npairs)
    return np.maximum(area, 0.0), np.maximum(ellipsoidal, 0.0)


# --- hits -----------------------------------------------------------------------------------------

@dataclass
class AreaHits:
    """Like engine.Hits, without geometry: one row per (parcel, effective kind)."""

    parcel: NDArray[np.int64]
    kind: NDArray[np.int64]
    area: NDArray[np.float64]
    ellipsoidal_area: NDArray[np.float64]
    member_bounds: NDArray[np.int64]
    member_piece: NDArray[np.int64]
    covered: NDArray[np.float64]


def overlap_areas(screener: Screener, geoms: NDArray[np.object_], parcel_ell: NDArray[np.float64], *,
                  urban_construction: bool) -> AreaHits:
    """Overlap areas of each parcel (working CRS) with each effective kind it covers; the same hits
    as ``Screener.overlaps`` (pairs under NOISE_M2 dropped, whole-parcel kinds take the parcel's areas)."""
    index = batch_index(screener)
    n = len(geoms)
    # bounding-box candidates only: a candidate that does not really overlap clips to zero area and is
    # dropped with the noise below, and the GEOS "intersects" test would cost more than the clipping
    idx = screener._tree.query(geoms)
    order = np.lexsort((idx[1], idx[0]))
    pair_parcel, pair_piece = idx[0][order].astype(np.int64), idx[1][order].astype(np.int64)
    areas, ells = pair_areas(screener, index, geoms, pair_parcel, pair_piece)
    covered = np.bincount(pair_parcel, weights=areas, minlength=n).astype(np.float64)
    real = areas > NOISE_M2
    pair_parcel, pair_piece, areas, ells = pair_parcel[real], pair_piece[real], areas[real], ells[real]
    rep, kind = screener._explode(pair_piece, urban_construction)
    key = pair_parcel[rep] * len(screener.kinds) + kind
    order = np.argsort(key, kind="stable")
    members = rep[order]
    key_sorted = key[order]
    change = np.r_[True, key_sorted[1:] != key_sorted[:-1]] if len(key_sorted) else np.zeros(0, bool)
    starts = np.flatnonzero(change)
    bounds = np.append(starts, len(key)).astype(np.int64)
    hit_parcel = pair_parcel[members[starts]]
    if len(starts):
        hit_area = np.add.reduceat(areas[members], starts)
        hit_ell = np.add.reduceat(ells[members], starts)
    else:
        hit_area, hit_ell = np.zeros(0), np.zeros(0)
    parcel_area = shapely.area(geoms)
    whole = hit_area >= parcel_area[hit_parcel] * (1 - 1e-9)  # as the engine: the parcel itself
    hit_area = np.where(whole, parcel_area[hit_parcel], hit_area)
    hit_ell = np.where(whole, parcel_ell[hit_parcel], hit_ell)
    return AreaHits(parcel=hit_parcel, kind=kind[order][starts], area=hit_area.astype(np.float64),
                    ellipsoidal_area=hit_ell.astype(np.float64), member_bounds=bounds,
                    member_piece=pair_piece[members], covered=covered)


def feature_ids_json(screener: Screener, hits: AreaHits, rows: NDArray[np.int64]) -> list[str]:
    """json.dumps(Screener.feature_ids(pieces of hit, kind)) for each hit in ``rows``."""
    sets = feature_sets(screener)
    sizes = np.diff(hits.member_bounds)[rows]
    hit_of = np.repeat(np.arange(len(rows)), sizes)
    starts = hits.member_bounds[rows]
    member = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
    member_set = sets.sets_of(hits.member_piece[member], hits.kind[rows][hit_of],
                              [label.key for label in screener.kinds])
    # hits whose members all share one feature set take its text; the others union their sets
    nsets = max(len(sets.texts), 1)
    pair = sorted_unique(hit_of * nsets + member_set)
    pair_hit, pair_set = pair // nsets, pair % nsets
    distinct = np.bincount(pair_hit, minlength=len(rows))
    first = np.searchsorted(pair_hit, np.arange(len(rows)))
    texts = np.asarray(sets.texts, dtype=object)
    single = distinct == 1
    out = np.full(len(rows), "[]", dtype=object)  # no member at all: no feature ids
    out[single] = texts[pair_set[first[single]]]
    several = np.flatnonzero(distinct > 1)
    if len(several):  # the union of their sets' features, in one vectorised pass
        pick = (distinct > 1)[pair_hit]
        owner = np.searchsorted(several, pair_hit[pick])
        out[several] = sets.unions(owner, pair_set[pick], len(several))
    return out.tolist()
