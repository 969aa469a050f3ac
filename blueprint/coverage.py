"""blueprint.coverage: partition one grid cell — clip, node, polygonize, look up covers, absorb slivers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon

from layers.geometry import polygonal_part

POLYGON, MULTIPOLYGON, COLLECTION = 3, 6, 7
# Every overlay runs snap-rounded on this grid (metres), so a vertex where a plan edge crosses a cell
# line comes out bit-identical in the two cells that share the line and the pieces stay a coverage.
GRID_M = 0.001


@dataclass(frozen=True)
class Absorbed:
    """A face narrower than the tolerance merged into a neighbour (``receiver`` is a local face index)."""

    receiver: int
    area_m2: float
    features: tuple[int, ...]  # global indices of the features that covered the absorbed face
    point: tuple[float, float]


@dataclass
class CellPartition:
    """The pieces of one cell: ``faces`` plus (face, feature) coverage pairs and what was absorbed."""

    faces: np.ndarray
    pair_face: np.ndarray
    pair_feature: np.ndarray
    absorbed: list[Absorbed] = field(default_factory=list)
    reference_area: float = 0.0  # city area inside the cell, computed independently of the faces


def clip_to_cell(cell: Polygon, feats: np.ndarray, geoms: np.ndarray,
                 bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features ``feats`` clipped to ``cell``; returns (kept global indices, clipped polygons)."""
    xmin, ymin, xmax, ymax = cell.bounds
    b = bounds[feats]
    inside = (b[:, 0] >= xmin) & (b[:, 1] >= ymin) & (b[:, 2] <= xmax) & (b[:, 3] <= ymax)
    clipped = geoms[feats].copy()
    if (~inside).any():
        clipped[~inside] = shapely.intersection(geoms[feats[~inside]], cell, grid_size=GRID_M)
    types = shapely.get_type_id(clipped)
    for i in np.flatnonzero(types == COLLECTION):  # touching parts leave lines or points behind
        part = polygonal_part(clipped[i])
        clipped[i] = part if part is not None else Polygon()
    keep = shapely.area(clipped) > 0.0
    return feats[keep], clipped[keep]


def faces_of(cell: Polygon, clipped: np.ndarray) -> np.ndarray:
    """All faces formed by the noded boundaries of ``clipped`` and the cell frame."""
    lines = np.append(shapely.boundary(clipped), cell.exterior)
    noded = shapely.union_all(lines, grid_size=GRID_M)  # nodes every crossing, dissolves shared edges
    return np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))


def coverage_pairs(faces: np.ndarray, clipped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(face, clipped-feature) pairs where the feature covers the face, by an interior point per face."""
    points = shapely.point_on_surface(faces)
    tree = shapely.STRtree(points)
    feat, face = tree.query(clipped, predicate="contains")  # input polygons are prepared, points are cheap
    return face, feat


def thin_faces(faces: np.ndarray, candidates: np.ndarray, cell: Polygon, tolerance_m: float) -> np.ndarray:
    """Indices among ``candidates`` of faces narrower than ``tolerance_m`` everywhere.

    A face cut thin by the cell frame itself is a grid artefact, not a sliver: faces lying along the
    frame for more than twice the tolerance are left alone.
    """
    if tolerance_m <= 0 or len(candidates) == 0:
        return np.empty(0, dtype=np.int64)
    g = faces[candidates]
    # cheap screen: a strip of width w has 2·area/perimeter ≈ w
    rough = 2.0 * shapely.area(g) < tolerance_m * shapely.length(g)
    idx = candidates[rough]
    if len(idx) == 0:
        return idx
    narrow = shapely.is_empty(shapely.buffer(faces[idx], -tolerance_m / 2.0))
    idx = idx[narrow]
    on_frame = shapely.length(shapely.intersection(shapely.boundary(faces[idx]), cell.exterior))
    return np.asarray(idx[on_frame <= 2.0 * tolerance_m], dtype=np.int64)


def pick_receivers(faces: np.ndarray, slivers: np.ndarray, others: np.ndarray,
                   priority: np.ndarray) -> dict[int, int]:
    """Sliver → the neighbour sharing the longest edge (ties: stronger ``priority``, then lower index)."""
    if len(slivers) == 0 or len(others) == 0:
        return {}
    tree = shapely.STRtree(faces[others])
    s_local, o_local = tree.query(faces[slivers], predicate="intersects")
    s, o = slivers[s_local], others[o_local]
    shared = shapely.length(shapely.intersection(shapely.boundary(faces[s]), shapely.boundary(faces[o])))
    best: dict[int, tuple[float, int, int]] = {}
    for si, oi, length in zip(s.tolist(), o.tolist(), shared.tolist(), strict=True):
        if length <= 0.0:
            continue
        key = (-round(length, 6), int(priority[oi]), oi)
        if si not in best or key < best[si]:
            best[si] = key
    return {si: key[2] for si, key in best.items()}


def absorb(faces: np.ndarray, receivers: dict[int, int]) -> np.ndarray:
    """``faces`` with each sliver unioned into its receiver (slivers themselves become None)."""
    out = faces.copy()
    groups: dict[int, list[int]] = {}
    for si, ri in receivers.items():
        groups.setdefault(ri, []).append(si)
    for ri, sis in groups.items():
        # faces share their edges exactly, so the coverage union is exact (a snap-rounded union
        # could collapse a millimetre-thin sliver and leave a gap)
        out[ri] = shapely.coverage_union_all([faces[ri], *faces[sis]])
        for si in sis:
            out[si] = None
    return out


def _absorbed_records(faces: np.ndarray, receivers: dict[int, int], face_i: np.ndarray,
                      feat_g: np.ndarray) -> list[Absorbed]:
    records = []
    for si, ri in sorted(receivers.items()):
        point = shapely.point_on_surface(faces[si])
        records.append(Absorbed(receiver=ri, area_m2=float(shapely.area(faces[si])),
                                features=tuple(sorted(feat_g[face_i == si].tolist())),
                                point=(float(point.x), float(point.y))))
    return records


def _make_precise(values: np.ndarray) -> np.ndarray:
    """GEOS ``PrecisionModel::makePrecise`` on the ``GRID_M`` grid: round half up, as snap-rounding does."""
    scaled = values * (1.0 / GRID_M)
    whole = np.trunc(scaled)
    frac = np.abs(scaled - whole)
    rounded = np.where(frac < 0.5, whole, np.where(frac > 0.5, whole + np.sign(scaled), np.floor(scaled) + 1))
    return rounded / (1.0 / GRID_M)


def _snap_rings(polys: np.ndarray) -> np.ndarray:
    """Polygons without holes with their vertices snapped to the grid (empty where snapping spoils one)."""
    coords, ring = shapely.get_coordinates(polys, return_index=True)  # no holes: the shell's coordinates
    snapped = _make_precise(coords)
    moved = shapely.has_z(polys)  # rebuilt in 2-D like the rest
    moved[ring[(snapped != coords).any(axis=1)]] = True
    out = polys.copy()
    if moved.any():
        # rebuilt from plain coordinates (a geometry snapped by GEOS carries its grid and GEOS would round
        # anything derived from it, e.g. interior points, unlike the polygonized faces); a polygon already
        # on the grid (input vertices on the millimetre) stays as it is: rebuilding gives the same one
        take = moved[ring]
        index = np.cumsum(moved) - 1
        out[moved] = shapely.polygons(shapely.linearrings(snapped[take], indices=index[ring[take]]))
    repeated = np.zeros(len(polys), dtype=bool)
    same = (ring[1:] == ring[:-1]) & (snapped[1:] == snapped[:-1]).all(axis=1)
    repeated[ring[1:][same]] = True
    bad = repeated | ~shapely.is_valid(out) | ~(shapely.area(out) > 0.0)
    out[bad] = Polygon()
    return np.asarray(out)


def isolated_features(cell: Polygon, clipped: np.ndarray, tolerance_m: float) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray, np.ndarray]:
    """Features whose boundary meets nothing: every other feature near them contains them with room.

    Such a feature (a simple polygon without holes, e.g. most farmland patches) is a face on its own
    and a plain hole in the one face around it, so noding and polygonizing it is wasted work.
    Feature ``i`` qualifies if its bounding box grown by ``2·tolerance + 10 grid steps`` lies inside the
    cell and every other feature either properly contains that box or is disjoint from it: then no edge
    passes within that clearance, snap-rounding cannot make it touch anything, and the face around it
    stays wider than the tolerance (so no sliver test changes). Returns (local indices, the features
    snapped to the grid, and the (isolated position, container local index) pairs).
    """
    empty = np.empty(0, dtype=np.int64)
    types = shapely.get_type_id(clipped)
    simple = (types == POLYGON) & (shapely.get_num_interior_rings(clipped) == 0)
    if tolerance_m > 0:  # a thin feature may be a sliver: leave it to the full path
        simple &= 2.0 * shapely.area(clipped) >= 2.0 * tolerance_m * shapely.length(clipped)
    cand = np.flatnonzero(simple)
    if len(cand) == 0:
        return empty, np.empty(0, dtype=object), empty, empty
    pad = 2.0 * tolerance_m + 10 * GRID_M
    b = shapely.bounds(clipped[cand])
    cx0, cy0, cx1, cy1 = cell.bounds
    grown = b + np.array([-pad, -pad, pad, pad])
    inside = (grown[:, 0] > cx0) & (grown[:, 1] > cy0) & (grown[:, 2] < cx1) & (grown[:, 3] < cy1)
    cand, grown = cand[inside], grown[inside]
    if len(cand) == 0:
        return empty, np.empty(0, dtype=object), empty, empty
    boxes = shapely.box(grown[:, 0], grown[:, 1], grown[:, 2], grown[:, 3])
    tree = shapely.STRtree(boxes)
    # the querying feature is prepared by the tree, so big zones against many boxes stay cheap
    f_hit, box_hit = tree.query(clipped, predicate="intersects")
    other = cand[box_hit] != f_hit
    f_hit, box_hit = f_hit[other], box_hit[other]
    f_in, box_in = tree.query(clipped, predicate="contains_properly")
    n_hit = np.bincount(box_hit, minlength=len(cand))
    n_in = np.bincount(box_in, minlength=len(cand))
    ok = n_hit == n_in  # contains_properly implies intersects, so equal counts mean the same features
    snapped = _snap_rings(clipped[cand])
    ok &= ~shapely.is_empty(snapped)
    new_pos = np.cumsum(ok) - 1
    keep_pair = ok[box_in]
    return cand[ok], snapped[ok], new_pos[box_in[keep_pair]], f_in[keep_pair]


def punch_holes(faces: np.ndarray, keep: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """``faces`` with each isolated piece cut out as a hole of the kept face around it (if any).

    The hole ring is the piece's own ring, so shared edges match vertex for vertex.
    """
    live = np.flatnonzero(keep)
    if len(pieces) == 0 or len(live) == 0:
        return faces
    coords, owner = shapely.get_coordinates(pieces, return_index=True)  # pieces have no holes
    probe = shapely.points(coords[np.searchsorted(owner, np.arange(len(pieces)))])  # each one's first vertex
    tree = shapely.STRtree(probe)
    face_local, piece_i = tree.query(faces[live], predicate="contains_properly")
    if len(face_local) == 0:
        return faces
    out = faces.copy()
    order = np.argsort(face_local, kind="stable")
    face_local, piece_i = face_local[order], piece_i[order]
    starts = np.flatnonzero(np.r_[True, face_local[1:] != face_local[:-1]])
    ends = np.r_[starts[1:], len(face_local)]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        f = int(live[face_local[s]])
        face = faces[f]
        holes = [*shapely.get_interior_ring(face, range(shapely.get_num_interior_rings(face))),
                 *shapely.get_exterior_ring(pieces[piece_i[s:e]])]
        out[f] = shapely.polygons(shapely.get_exterior_ring(face), holes=holes)
    return out


def _between_boundary_features(faces: np.ndarray, in_city: np.ndarray,
                               bounds_clipped: np.ndarray) -> np.ndarray:
    """Faces in no boundary feature that still lie inside the city: where two boundary features (districts)
    share an edge, each was snapped to the grid on its own, and the noding can leave a face a fraction of
    a millimetre wide between the two copies of the edge. Such a face is city, not a hole: it is taken when
    most of its area is inside the boundary features' union (which closes that gap)."""
    out = np.zeros(len(faces), dtype=bool)
    candidates = np.flatnonzero(~in_city)
    if len(bounds_clipped) < 2 or len(candidates) == 0:
        return out
    city = shapely.union_all(bounds_clipped, grid_size=GRID_M)
    near = candidates[shapely.intersects(city, faces[candidates])]
    if len(near):
        inside = shapely.area(shapely.intersection(faces[near], city)) > 0.5 * shapely.area(faces[near])
        out[near[inside]] = True
    return out


def partition_cell(cell: Polygon, feats: np.ndarray, geoms: np.ndarray, bounds: np.ndarray, *,
                   is_boundary: np.ndarray, priority: np.ndarray, tolerance_m: float) -> CellPartition:
    """Partition the city inside ``cell`` into faces, each with the plan features covering it.

    The city is the union of the boundary features if any are given (``is_boundary``), else the union
    of all features. Faces narrower than ``tolerance_m`` are absorbed into their best neighbour.
    ``priority`` (per global feature, lower is stronger) breaks ties between equally long neighbours.
    """
    empty = CellPartition(np.empty(0, dtype=object), np.empty(0, np.int64), np.empty(0, np.int64))
    kept, clipped = clip_to_cell(cell, feats, geoms, bounds)
    if len(kept) == 0:
        return empty
    iso, iso_geoms, iso_pair_pos, iso_pair_feat = isolated_features(cell, clipped, tolerance_m)
    rest = np.ones(len(kept), dtype=bool)
    rest[iso] = False
    rest_i = np.flatnonzero(rest)
    faces = faces_of(cell, clipped[rest_i])
    face_i, feat_local = coverage_pairs(faces, clipped[rest_i])
    feat_g = kept[rest_i[feat_local]]
    on_boundary = is_boundary[feat_g]
    has_boundary = bool(is_boundary.any())
    in_city = np.zeros(len(faces), dtype=bool)
    in_city[face_i[on_boundary] if has_boundary else face_i] = True
    if has_boundary:
        in_city |= _between_boundary_features(faces, in_city, clipped[rest_i][is_boundary[kept[rest_i]]])
    face_i, feat_g = face_i[~on_boundary], feat_g[~on_boundary]  # the boundary is extent, not a control

    face_priority = np.full(len(faces), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(face_priority, face_i, priority[feat_g])
    city = np.flatnonzero(in_city)
    slivers = thin_faces(faces, city, cell, tolerance_m)
    receivers = pick_receivers(faces, slivers, np.setdiff1d(city, slivers), face_priority)
    records = _absorbed_records(faces, receivers, face_i, feat_g)
    merged = absorb(faces, receivers)

    keep = in_city.copy()
    keep[list(receivers)] = False
    new_index = np.cumsum(keep) - 1
    pair_keep = keep[face_i]
    reference = clipped[is_boundary[kept]] if has_boundary else clipped

    # isolated features: a face each (covered by itself and its containers), a hole in the face around
    iso_g = kept[iso]
    iso_in_city = np.zeros(len(iso), dtype=bool)
    if has_boundary:
        iso_in_city[iso_pair_pos[is_boundary[kept[iso_pair_feat]]]] = True
    else:
        iso_in_city[:] = True
    # a boundary part meeting nothing (an island district, a small enclave) is city too: a face covered by
    # its containers only — dropping it left a hole in the face around it (a gap in the coverage)
    iso_in_city |= is_boundary[iso_g]
    merged = punch_holes(merged, keep, iso_geoms)
    iso_new = np.cumsum(iso_in_city) - 1 + int(keep.sum())
    own = np.flatnonzero(iso_in_city & ~is_boundary[iso_g])  # the boundary is extent, not a control
    cont = iso_in_city[iso_pair_pos] & ~is_boundary[kept[iso_pair_feat]]
    pair_face = np.concatenate([new_index[face_i[pair_keep]], iso_new[own], iso_new[iso_pair_pos[cont]]])
    pair_feature = np.concatenate([feat_g[pair_keep], iso_g[own], kept[iso_pair_feat[cont]]])
    return CellPartition(
        faces=np.concatenate([merged[keep], iso_geoms[iso_in_city]]),
        pair_face=pair_face,
        pair_feature=pair_feature,
        absorbed=[Absorbed(int(new_index[r.receiver]), r.area_m2, r.features, r.point) for r in records],
        reference_area=float(shapely.area(shapely.union_all(reference))),
    )


def _seam_points(grid: np.ndarray, coords: np.ndarray, axis: int,
                 lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex on one of ``lines``: sorted packed (line, position) keys and the exact coordinate
    along the line (copied, never recomputed, so inserted vertices equal the other side's bit for bit)."""
    on = np.flatnonzero(np.isin(grid[:, axis], lines))
    keys = grid[on, axis] * (1 << 32) + grid[on, 1 - axis]
    keys, first = np.unique(keys, return_index=True)
    return keys, coords[on[first], 1 - axis]


def _seam_ranges(a: np.ndarray, b: np.ndarray, axis: int,
                 keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For edges from grid points ``a`` to ``b`` along a seam: the range of seam ``keys`` strictly between
    their ends (``keys[first:last]``) and whether the edge runs towards larger coordinates."""
    lo, hi = np.minimum(a[:, 1 - axis], b[:, 1 - axis]), np.maximum(a[:, 1 - axis], b[:, 1 - axis])
    base = a[:, axis] * (1 << 32)
    first = np.searchsorted(keys, base + lo, side="right")
    last = np.searchsorted(keys, base + hi, side="left")
    return first, last, a[:, 1 - axis] < b[:, 1 - axis]


Seams = dict[int, tuple[np.ndarray, np.ndarray]]  # axis → (packed (line, position) keys, coordinate along)


def _origin(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The grid's lower-left corner in grid steps: every piece lies above and right of it."""
    return np.array([round(xs[0] / GRID_M), round(ys[0] / GRID_M)], dtype=np.int64)


def seam_points(faces: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> Seams:
    """Every vertex of ``faces`` lying on an inner cell line, per axis (see :func:`merge_seams`)."""
    scale = 1.0 / GRID_M
    inner = [np.round(xs[1:-1] * scale).astype(np.int64), np.round(ys[1:-1] * scale).astype(np.int64)]
    out: Seams = {}
    if len(faces) == 0:
        return out
    coords = shapely.get_coordinates(faces[_on_lines(faces, inner)])
    grid = np.round(coords * scale).astype(np.int64) - _origin(xs, ys)  # small: (line, position) packs
    for axis in (0, 1):
        if len(inner[axis]):
            out[axis] = _seam_points(grid, coords, axis, inner[axis] - _origin(xs, ys)[axis])
    return out


def merge_seams(parts: Sequence[Seams]) -> Seams:
    """The seam points of several groups of faces, as :func:`seam_points` of all of them in that order
    gives (the first copy of a point wins, so a partitioned build inserts the same coordinates)."""
    out: Seams = {}
    for axis in (0, 1):
        found = [p[axis] for p in parts if axis in p]
        if found:
            keys, first = np.unique(np.concatenate([k for k, _ in found]), return_index=True)
            out[axis] = (keys, np.concatenate([a for _, a in found])[first])
    return out


def stitch_seams(faces: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                 seams: Seams | None = None) -> tuple[np.ndarray, int]:
    """Insert into every piece edge lying on a cell line the vertices the piece across it has there.

    Each cell is partitioned on its own; a feature poking a fraction of a millimetre across a cell line
    collapses on one side but leaves its crossing vertices on the other. Seams are straight grid lines,
    so adding the missing (exactly collinear) vertices makes both sides match vertex for vertex.
    ``seams`` are the seam points of every face of the build (default: of ``faces``; a partitioned
    build passes those of all its batches). Returns the faces and how many were changed.
    """
    scale = 1.0 / GRID_M
    inner = [np.round(xs[1:-1] * scale).astype(np.int64), np.round(ys[1:-1] * scale).astype(np.int64)]
    if len(faces) == 0 or (len(inner[0]) == 0 and len(inner[1]) == 0):
        return faces, 0
    if seams is None:
        seams = seam_points(faces, xs, ys)
    touching = np.flatnonzero(_on_lines(faces, inner))  # only these can have an edge on a cell line
    if len(touching) == 0:
        return faces, 0
    changed, count = _stitch(faces[touching], inner, _origin(xs, ys), seams)
    out = faces.copy()
    out[touching] = changed
    return out, count


def _on_lines(faces: np.ndarray, inner: list[np.ndarray]) -> np.ndarray:
    """Which faces reach one of the ``inner`` cell lines (grid steps) with their box: the only ones that
    can have a vertex there (rounding is monotonic, so a vertex rounds between the box's rounded ends)."""
    bounds = shapely.bounds(faces)
    finite = np.isfinite(bounds).all(axis=1)  # an empty face has no box: kept, it has nothing to stitch
    box = np.round(np.where(finite[:, None], bounds, 0.0) * (1.0 / GRID_M)).astype(np.int64)
    out = ~finite
    for axis in (0, 1):
        lines = np.sort(inner[axis])
        out |= np.searchsorted(lines, box[:, axis], side="left") < np.searchsorted(lines, box[:, axis + 2],
                                                                                   side="right")
    return out


def _stitch(faces: np.ndarray, inner: list[np.ndarray], offset: np.ndarray,
            seams: Seams) -> tuple[np.ndarray, int]:
    """:func:`stitch_seams` on the faces reaching a cell line."""
    scale = 1.0 / GRID_M
    rings, ring_face = shapely.get_rings(faces, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    grid = np.round(coords * scale).astype(np.int64) - offset
    same_ring = ring[1:] == ring[:-1]
    extra: dict[int, list[tuple[int, np.ndarray]]] = {}  # coordinate index → seam points after it
    for axis in (0, 1):
        if axis not in seams or len(seams[axis][0]) == 0:
            continue
        keys, along = seams[axis]
        lines = inner[axis] - offset[axis]
        on_line = (grid[1:, axis] == grid[:-1, axis]) & np.isin(grid[:-1, axis], lines) & same_ring
        ks = np.flatnonzero(on_line)
        first, last, rising = _seam_ranges(grid[ks], grid[ks + 1], axis, keys)
        for j in np.flatnonzero(last > first).tolist():  # the few edges that gain vertices
            pts = along[first[j]:last[j]]
            extra.setdefault(int(ks[j]), []).append((axis, pts if rising[j] else pts[::-1]))
    if not extra:
        return faces, 0
    return _rebuild(faces, rings, ring_face, coords, ring, extra)


def _rebuild(faces: np.ndarray, rings: np.ndarray, ring_face: np.ndarray, coords: np.ndarray,
             ring: np.ndarray, extra: dict[int, list[tuple[int, np.ndarray]]]) -> tuple[np.ndarray, int]:
    """Faces whose rings gained seam vertices, rebuilt (shell first, then holes, as GEOS lists them)."""
    touched_rings = sorted({int(ring[k]) for k in extra})
    # coordinates come ring by ring and rings face by face: slices, not a scan per ring
    ring_start = np.searchsorted(ring, np.arange(len(rings) + 1)).tolist()
    face_start = np.searchsorted(ring_face, np.arange(len(faces) + 1)).tolist()
    new_rings: dict[int, np.ndarray] = {}
    for r in touched_rings:
        pts: list[np.ndarray] = []
        for k in range(ring_start[r], ring_start[r + 1]):
            pts.append(coords[k:k + 1])
            for axis, along in extra.get(k, []):
                fixed = np.full(len(along), coords[k, axis])  # the seam line, as this side has it
                pts.append(np.column_stack([fixed, along] if axis == 0 else [along, fixed]))
        new_rings[r] = np.vstack(pts)
    out = faces.copy()
    touched_faces = sorted({int(ring_face[r]) for r in touched_rings})
    for f in touched_faces:
        parts = [new_rings.get(r, coords[ring_start[r]:ring_start[r + 1]])
                 for r in range(face_start[f], face_start[f + 1])]
        out[f] = shapely.Polygon(parts[0], parts[1:])
    return out, len(touched_faces)
