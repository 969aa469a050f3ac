"""checks.batch_clip: flat rings clipped by convex parcels, and their plane and ellipsoidal areas, in numpy.

Hand-written because no library clips millions of small rings by as many different convex polygons in
vectorised form: GEOS (``shapely.intersection`` on arrays) took 10.1 s for the pairs of 2×10⁴ bench parcels,
against ≈ 1.6 s for their whole batch, building overlap polygons the batch never needs (bench/README.md).

Before clipping, each (parcel, piece) pair is classed by the piece's bounding box against the parcel's
edges: a box inside every edge (by a margin far above rounding) means the piece's rings clip to themselves,
a box outside one edge means they clip to nothing, so only the pairs whose box straddles an edge run the
Sutherland–Hodgman passes. Both shortcuts give bit for bit what the passes would give.

Ellipsoidal areas reproject every clipped vertex with pyproj. A per-blueprint cache of the pieces' vertices
in lon/lat (so that only new cut points would need pyproj) was measured and dropped: 10⁵ parcels × 10⁶
pieces, pair areas 4.1–4.4 s CPU with a warm cache vs 4.5 s without, but 5.1 s on the run that fills it,
and 17 bytes per blueprint vertex held per process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS

from checks.areas import CGCS2000_A, CGCS2000_INVF
from layers.crs import CGCS2000, transformer

SIDE_MARGIN_M = 1e-6  # a box counts as inside / outside an edge only this far (m) from its line

# authalic sphere of the CGCS2000 ellipsoid: equal-area, so areas on it are ellipsoidal areas
_F = 1.0 / CGCS2000_INVF
_E2 = _F * (2 - _F)
_E = float(np.sqrt(_E2))


def _q(phi: NDArray[np.float64]) -> NDArray[np.float64]:
    s = np.sin(phi)
    return np.asarray((1 - _E2) * (s / (1 - _E2 * s * s) - np.log((1 - _E * s) / (1 + _E * s)) / (2 * _E)))


_QP = float(_q(np.asarray([np.pi / 2]))[0])
_RQ2 = CGCS2000_A * CGCS2000_A * _QP / 2  # authalic radius squared

MASK_STEPS = 16  # edges a straddle mask tells apart (uint16: numpy's radix sort groups rings by it)
ALL_STEPS = (1 << MASK_STEPS) - 1


@dataclass
class Rings:
    """Flat rings: vertices (x, y) in order, ``ring`` id per vertex (each ring's vertices contiguous)."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    ring: NDArray[np.int64]

    def take(self, keep: NDArray[np.bool_] | NDArray[np.int64] | slice) -> Rings:
        return Rings(self.x[keep], self.y[keep], self.ring[keep])

    @staticmethod
    def concat(parts: list[Rings]) -> Rings:
        """The parts' rings one after the other (ring ids of different parts must differ)."""
        return Rings(np.concatenate([r.x for r in parts]), np.concatenate([r.y for r in parts]),
                     np.concatenate([r.ring for r in parts]))


def _angles(lon: object, lat: object) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    lam = np.radians(np.asarray(lon))
    t = np.tan(np.arcsin(np.clip(_q(np.radians(np.asarray(lat))) / _QP, -1.0, 1.0)) / 2)
    return lam, t


def prev_vertex(ring: NDArray[np.int64]) -> NDArray[np.int64]:
    """Index of each vertex's predecessor inside its (cyclic) ring."""
    n = len(ring)
    prev = np.arange(-1, n - 1)
    if n == 0:
        return prev
    start = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    end = np.r_[start[1:], n] - 1
    prev[start] = end
    return prev


# --- which pairs need clipping --------------------------------------------------------------------

def box_sides(bounds: NDArray[np.float64], hull_x: NDArray[np.float64], hull_y: NDArray[np.float64],
              hull_n: NDArray[np.int64], steps: int) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Per pair, the box (local minx, miny, maxx, maxy) against the pair's convex CCW polygon (the
    arguments of ``clip_convex``): whether it lies outside one of the ``steps`` edges (its rings clip to
    nothing), and a bit mask of the edges it is not inside of (0: inside all, its rings clip to themselves;
    only these edges can change its rings). Pairs of more than MASK_STEPS steps get every bit.

    The edge function is linear, so over a box its extremes are at corners; the margin (SIDE_MARGIN_M
    times the edge length, ≈ 1e-4 for a 100 m edge) is ~10⁶ times the rounding of the edge function on
    coordinates of a few km, so every vertex in the box (and every point the clipping puts on a segment
    between them) gets the same in/out answer in the passes."""
    n = len(bounds)
    straddle = np.zeros(n, dtype=np.int64)
    outside = np.zeros(n, dtype=bool)
    rows = np.arange(n)
    x0, y0, x1, y1 = bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]
    for s in range(steps):
        e = np.minimum(s, hull_n - 1)
        ax, ay = hull_x[rows, e], hull_y[rows, e]
        dx, dy = hull_x[rows, e + 1] - ax, hull_y[rows, e + 1] - ay
        margin = SIDE_MARGIN_M * np.hypot(dx, dy)
        # d = dx·(y − ay) − dy·(x − ax): lowest at y0 when dx ≥ 0 (else y1), at x1 when dy ≥ 0 (else x0)
        ylo, yhi = np.where(dx >= 0, y0, y1), np.where(dx >= 0, y1, y0)
        xlo, xhi = np.where(dy >= 0, x1, x0), np.where(dy >= 0, x0, x1)
        inside = dx * (ylo - ay) - dy * (xlo - ax) >= margin
        outside |= dx * (yhi - ay) - dy * (xhi - ax) < -margin
        straddle |= np.where(inside, 0, 1 << min(s, MASK_STEPS - 1))
    if steps > MASK_STEPS:
        straddle = np.where(straddle != 0, ALL_STEPS, 0)
    return outside, straddle


# --- clipping -------------------------------------------------------------------------------------

def _clip_step(r: Rings, ax: NDArray[np.float64], ay: NDArray[np.float64], dx: NDArray[np.float64],
               dy: NDArray[np.float64]) -> Rings:
    """Sutherland–Hodgman by one half-plane per ring (left of a + t·d), all rings at once."""
    if len(r.x) == 0:
        return r
    d = dx[r.ring] * (r.y - ay[r.ring]) - dy[r.ring] * (r.x - ax[r.ring])
    inside = d >= 0
    prev = prev_vertex(r.ring)
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
    return Rings(x, y, ring)


def clip_convex(rings: Rings, ring_pair: NDArray[np.int64], hull_x: NDArray[np.float64],
                hull_y: NDArray[np.float64], hull_n: NDArray[np.int64], steps: int,
                straddle: NDArray[np.int64]) -> Rings:
    """Clip every ring by its pair's convex CCW polygon (hull_x/hull_y: (pairs, K+1) padded closed
    rings, hull_n: edges per pair; from edge hull_n − 1 on, the last edge is applied again up to
    ``steps`` passes). Pass s runs only on rings whose pair's ``straddle`` mask (``box_sides``) has bit
    s: the others lie inside that edge, where a pass returns the ring unchanged. Rings come back grouped
    by mask (each ring's vertices still contiguous and in order)."""
    rows = np.arange(len(hull_n))
    edges = []
    for s in range(steps):
        e = np.minimum(s, hull_n - 1)
        ax, ay = hull_x[rows, e], hull_y[rows, e]
        dx, dy = hull_x[rows, e + 1] - ax, hull_y[rows, e + 1] - ay
        edges.append((ax[ring_pair], ay[ring_pair], dx[ring_pair], dy[ring_pair]))
    if len(rings.x) == 0:
        return rings
    mask = straddle[ring_pair].astype(np.uint16)[rings.ring]
    order = np.argsort(mask, kind="stable")  # radix sort; rings stay contiguous and in order
    rings, mask = rings.take(order), mask[order]
    cut = np.r_[0, np.flatnonzero(mask[1:] != mask[:-1]) + 1, len(mask)]
    groups = []
    for a, b in zip(cut[:-1].tolist(), cut[1:].tolist(), strict=True):
        group = rings.take(slice(a, b))
        bits = int(mask[a])
        for s in range(steps):
            if bits >> min(s, MASK_STEPS - 1) & 1:
                group = _clip_step(group, *edges[s])
        groups.append(group)
    return Rings.concat(groups)


# --- areas of flat rings ------------------------------------------------------------------------

def ring_areas(r: Rings, ox: NDArray[np.float64], oy: NDArray[np.float64], n: int, crs: CRS
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Signed plane and ellipsoidal areas per ring id < n; (ox, oy) per ring: the origin the local
    coordinates r.x, r.y are relative to. Both signs follow the ring's orientation (CCW positive)."""
    if len(r.x) == 0:
        return np.zeros(n), np.zeros(n)
    prev = prev_vertex(r.ring)
    plane = np.bincount(r.ring, weights=r.x[prev] * r.y - r.x * r.y[prev], minlength=n) / 2.0
    lam, t = _angles(*transformer(crs, CGCS2000).transform(r.x + ox[r.ring], r.y + oy[r.ring]))
    dl = lam - lam[prev]
    dl = np.where(dl > np.pi, dl - 2 * np.pi, np.where(dl < -np.pi, dl + 2 * np.pi, dl))
    excess = 2 * np.arctan2(np.tan(dl / 2) * (t + t[prev]), 1 + t * t[prev])
    ell = -_RQ2 * np.bincount(r.ring, weights=excess, minlength=n).astype(np.float64)  # CCW sums negative
    return plane, ell
