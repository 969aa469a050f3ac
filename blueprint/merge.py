"""blueprint.merge: merge plan layers into one blueprint — a clean partition with precedence and conflicts."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from blueprint.conflicts import PLAIN_ID, _conflict_rows, _conflicts_frame
from blueprint.coverage import GRID_M, CellPartition, partition_cell, stitch_seams
from blueprint.errors import (
    CoverageCheckError,
    MergeInputError,
    NoLayersError,
    PrecedenceError,
)
from blueprint.features import check_feature_layers, condition_features, with_plan_conflicts
from blueprint.model import Blueprint, LayerRef
from blueprint.precedence import Precedence
from layers.areas import plane_zones, zone_and_ellipsoidal_areas
from layers.catalogue import Catalogue
from layers.crs import OFFSET_DATUMS, assert_same_crs, parse_crs
from layers.errors import CRSError, WebMapOffsetError
from layers.model import PlanLayer
from layers.web_offsets import web_map_offset_fit

# Grid cells hold about this many features: small enough that no face (e.g. a zone with 10⁵ farmland
# holes) dominates, large enough that per-cell Python overhead stays negligible.
FEATURES_PER_CELL = 1500
AREA_RTOL = 1e-9
GEOS_CHECK_MAX = 20_000  # above this many pieces the linear edge test replaces coverage_is_valid
UNPLANNED = "unplanned"
PIECE_COLUMNS = ["piece_id", "kind", "kinds", "covered_by", "sources", "area_m2", "ellipsoidal_area_m2",
                 "geometry"]

Progress = Callable[[str, float], None]


@dataclass
class _Features:
    """Every input feature flattened into arrays (plan layers first, boundary features last)."""

    geoms: np.ndarray
    kind: np.ndarray  # index into ``kinds``
    layer: np.ndarray  # index into ``layers``
    fid: list[str]
    is_boundary: np.ndarray
    kinds: list[str]  # catalogue order
    layers: list[PlanLayer]  # boundary layers last


# ---------------------------------------------------------------- input checks


def _check_geometries(layer: PlanLayer) -> None:
    geoms = np.asarray(layer.frame.geometry.values, dtype=object)
    missing = np.array([g is None for g in geoms], dtype=bool)
    problem: np.ndarray = missing.copy()
    present = geoms[~missing]
    types = shapely.get_type_id(present)
    bad = ~np.isin(types, (3, 6)) | shapely.is_empty(present)
    bad |= ~bad & ~shapely.is_valid(present)
    problem[~missing] = bad
    if problem.any():
        i = int(np.flatnonzero(problem)[0])
        fid = str(layer.frame["feature_id"].iloc[i])
        g = geoms[i]
        what = "no geometry" if g is None else (
            f"a {g.geom_type}" if g.geom_type not in ("Polygon", "MultiPolygon") or g.is_empty
            else f"invalid ({shapely.is_valid_reason(g)})")
        raise MergeInputError(
            f"layer '{layer.name}' ({layer.kind}): feature {fid} is {what}; repair the layer first "
            f"({int(problem.sum())} bad feature(s) in all)")


def _check_layer(layer: PlanLayer, catalogue: Catalogue, precedence: Precedence) -> None:
    if layer.kind not in catalogue:
        raise MergeInputError(f"layer '{layer.name}': unknown kind '{layer.kind}'; "
                              f"known kinds: {', '.join(catalogue)}")
    if catalogue[layer.kind].group in ("line", "zone") and layer.kind not in precedence.order:
        raise PrecedenceError(f"layer '{layer.name}': kind '{layer.kind}' is not ranked by the precedence "
                              f"({', '.join(precedence.order)})")
    if "feature_id" not in layer.frame.columns:
        raise MergeInputError(f"layer '{layer.name}' ({layer.kind}) has no feature_id column")
    _check_geometries(layer)


def _split_boundary(layers: Sequence[PlanLayer], boundary: PlanLayer | None,
                    catalogue: Catalogue) -> tuple[list[PlanLayer], list[PlanLayer]]:
    """Plan layers and boundary layers; a boundary-group layer among ``layers`` is the boundary."""
    plan = [lay for lay in layers if lay.kind not in catalogue or catalogue[lay.kind].group != "boundary"]
    bounds = [lay for lay in layers if lay not in plan]
    if boundary is not None:
        if bounds:
            raise MergeInputError(f"two boundaries: '{boundary.name}' and layer '{bounds[0].name}'")
        bounds = [boundary]
    return plan, bounds


def _check_inputs(layers: Sequence[PlanLayer], boundary: PlanLayer | None, catalogue: Catalogue,
                  precedence: Precedence, tolerance_m: float) -> tuple[list[PlanLayer], list[PlanLayer]]:
    if not math.isfinite(tolerance_m) or tolerance_m < 0:
        raise MergeInputError(f"tolerance must be a width in metres ≥ 0, got {tolerance_m}")
    plan, bounds = _split_boundary(layers, boundary, catalogue)
    if not plan:
        raise NoLayersError("no plan layers to merge 没有可合并的规划图层")
    for layer in plan:
        _check_layer(layer, catalogue, precedence)
    for layer in bounds:
        if "feature_id" not in layer.frame.columns:
            raise MergeInputError(f"boundary layer '{layer.name}' has no feature_id column")
        _check_geometries(layer)
    first = plan[0]
    if first.frame.crs is None:
        raise MergeInputError(f"layer '{first.name}' has no CRS")
    for layer in [*plan[1:], *bounds]:
        assert_same_crs(first.frame, layer.frame, what=f"layer '{first.name}' and layer '{layer.name}'")
    if bounds:
        _refuse_web_map_offsets(plan, bounds)
    return plan, bounds


def _refuse_web_map_offsets(plan: Sequence[PlanLayer], bounds: Sequence[PlanLayer]) -> None:
    """A layer delivered in longitude/latitude that sticks out of the city and fits it once moved from
    GCJ-02 / BD-09 was read in the wrong datum: refuse it by name rather than merge it ~500 m off."""
    city = shapely.union_all(np.concatenate(
        [np.asarray(b.frame.geometry.values, dtype=object) for b in bounds]))
    for layer in plan:
        try:
            lonlat = parse_crs(layer.crs_in).is_geographic
        except CRSError:  # a CRS name rather than a code: not known to be lon/lat
            lonlat = False
        if not lonlat:
            continue
        fit = web_map_offset_fit(np.asarray(layer.frame.geometry.values, dtype=object), city,
                                 CRS.from_user_input(layer.frame.crs))
        if fit is not None:
            raise WebMapOffsetError(
                f"layer '{layer.name}' ({layer.source}, read as {layer.crs_in}): {fit.outside_ratio:.2%} of "
                f"its area lies outside the city boundary, {fit.outside_ratio_undone:.3%} once moved from "
                f"{OFFSET_DATUMS[fit.offset]} to WGS 84: it looks like {fit.offset} read as WGS 84. Import "
                f"it again declaring the CRS as {fit.offset} (CLI: --crs {fit.offset} --replace)")


def _flatten(plan: list[PlanLayer], bounds: list[PlanLayer], catalogue: Catalogue) -> _Features:
    kinds = [k for k in catalogue if any(lay.kind == k for lay in plan)]
    all_layers = [*plan, *bounds]
    geoms: list[np.ndarray] = []
    kind: list[np.ndarray] = []
    layer_i: list[np.ndarray] = []
    is_b: list[np.ndarray] = []
    fids: list[str] = []
    for li, layer in enumerate(all_layers):
        n = len(layer.frame)
        geoms.append(np.asarray(layer.frame.geometry.values, dtype=object))
        kind.append(np.full(n, kinds.index(layer.kind) if li < len(plan) else -1, dtype=np.int64))
        layer_i.append(np.full(n, li, dtype=np.int64))
        fids.extend(str(v) for v in layer.frame["feature_id"])
        is_b.append(np.full(n, li >= len(plan), dtype=bool))
    return _Features(np.concatenate(geoms), np.concatenate(kind), np.concatenate(layer_i), fids,
                     np.concatenate(is_b), kinds, all_layers)


# ---------------------------------------------------------------- partition


def _free_lines(start: float, stop: float, n: int, taken: np.ndarray) -> np.ndarray:
    """``n + 1`` grid-aligned line positions from ``start`` to ``stop``, none on a vertex coordinate.

    A plan vertex lying exactly on a cell line would be seen by one cell only; shifting the line by a
    few grid steps keeps every seam vertex a crossing that both neighbouring cells compute alike.
    """
    steps = np.round(np.linspace(start, stop, n + 1) / GRID_M).astype(np.int64)
    near = taken[(taken >= steps[0] - 1000) & (taken <= steps[-1] + 1000)]
    for i in range(len(steps)):  # a few dozen lines: one vectorised scan each beats a set of every vertex
        while (near == steps[i]).any():
            steps[i] += -1 if i == 0 else 1  # outer lines move outwards, inner ones sideways
    return steps / (1.0 / GRID_M)


def grid_shape(extent: tuple[float, float, float, float], n_features: int, margin: float,
               cell_size_m: float | None) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """(start, stop, count) of the cell lines along x and along y, before they step off vertices."""
    xmin, ymin, xmax, ymax = extent[0] - margin, extent[1] - margin, extent[2] + margin, extent[3] + margin
    width, height = xmax - xmin, ymax - ymin
    if cell_size_m is None:
        n_cells = max(1, math.ceil(n_features / FEATURES_PER_CELL))
        cell_size_m = math.sqrt(width * height / n_cells)
    nx, ny = max(1, round(width / cell_size_m)), max(1, round(height / cell_size_m))
    return (xmin, xmax, nx), (ymin, ymax, ny)


def cell_boxes(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The cells between the lines ``xs`` and ``ys``, row by row (the order cells are merged in)."""
    x0, y0 = np.meshgrid(xs[:-1], ys[:-1])
    x1, y1 = np.meshgrid(xs[1:], ys[1:])
    return np.asarray(shapely.box(x0.ravel(), y0.ravel(), x1.ravel(), y1.ravel()))


def _grid(extent: tuple[float, float, float, float], n_features: int, margin: float,
          cell_size_m: float | None, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell boxes tiling ``extent`` grown by ``margin``, and the x and y positions of the cell lines."""
    (xmin, xmax, nx), (ymin, ymax, ny) = grid_shape(extent, n_features, margin, cell_size_m)
    on_grid = np.round(coords / GRID_M).astype(np.int64)
    xs = _free_lines(xmin, xmax, nx, on_grid[:, 0])
    ys = _free_lines(ymin, ymax, ny, on_grid[:, 1])
    return cell_boxes(xs, ys), xs, ys


def _priority(feats: _Features, precedence: Precedence) -> np.ndarray:
    """Per feature: its kind's precedence rank (overlays after every exclusive kind)."""
    ranks = np.array([precedence.order.index(k) if k in precedence.order else len(precedence.order)
                      for k in feats.kinds] + [len(precedence.order) + 1], dtype=np.int64)
    return ranks[feats.kind]  # kind -1 (boundary) picks the last entry


def grid_margin(tolerance_m: float) -> float:
    """How far the grid reaches past the city: an odd margin keeps grid lines off the round coordinates
    plan edges like to sit on."""
    return 1.0 / math.pi + 4 * tolerance_m


def _partition(feats: _Features, precedence: Precedence, tolerance_m: float, cell_size_m: float | None,
               workers: int, progress: Progress) -> tuple[list[CellPartition], np.ndarray, np.ndarray]:
    bounds = shapely.bounds(feats.geoms)
    src = bounds[feats.is_boundary] if feats.is_boundary.any() else bounds
    extent = (src[:, 0].min(), src[:, 1].min(), src[:, 2].max(), src[:, 3].max())
    cells, xs, ys = _grid(extent, len(feats.geoms), grid_margin(tolerance_m), cell_size_m,
                          shapely.get_coordinates(feats.geoms))
    cell_i, feat_i = shapely.STRtree(feats.geoms).query(cells)  # bounding boxes only
    order = np.lexsort((feat_i, cell_i))
    cell_i, feat_i = cell_i[order], feat_i[order]
    starts = np.searchsorted(cell_i, np.arange(len(cells) + 1))
    busy = [c for c in range(len(cells)) if starts[c + 1] > starts[c]]
    priority = _priority(feats, precedence)

    def one(c: int) -> CellPartition:
        return partition_cell(cells[c], feat_i[starts[c]:starts[c + 1]], feats.geoms, bounds,
                              is_boundary=feats.is_boundary, priority=priority, tolerance_m=tolerance_m)

    parts = []
    # shapely releases the GIL inside its vectorised GEOS calls, so threads share the cells well
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, part in enumerate(pool.map(one, busy), start=1):
            parts.append(part)
            progress("合并网格 merging cells", 0.05 + 0.75 * done / max(len(busy), 1))
    return parts, xs, ys


# ---------------------------------------------------------------- attributes


@dataclass
class _Pieces:
    geoms: np.ndarray
    pair_piece: np.ndarray
    pair_feature: np.ndarray
    code: np.ndarray  # bitmask of covering kinds


def _concat(parts: list[CellPartition], feats: _Features) -> tuple[_Pieces, list[tuple[int, Any]]]:
    offsets = np.cumsum([0] + [len(p.faces) for p in parts])
    geoms = np.concatenate([p.faces for p in parts]) if parts else np.empty(0, dtype=object)
    pair_piece = np.concatenate([p.pair_face + off for p, off in zip(parts, offsets, strict=False)] or
                                [np.empty(0, np.int64)])
    pair_feature = np.concatenate([p.pair_feature for p in parts] or [np.empty(0, np.int64)])
    code = np.zeros(len(geoms), dtype=np.int64)
    np.bitwise_or.at(code, pair_piece, np.left_shift(1, feats.kind[pair_feature]))
    absorbed = [(int(off) + a.receiver, a)
                for p, off in zip(parts, offsets, strict=False) for a in p.absorbed]
    return _Pieces(geoms, pair_piece, pair_feature, code), absorbed


@dataclass(frozen=True)
class _Combo:
    """What a set of covering kinds means after precedence."""

    kind: str
    kinds: str  # JSON
    covered_by: str  # JSON
    disputes: tuple[tuple[str, str, str], ...]  # (winner, loser, rule)


def _combo(code: int, kinds: list[str], catalogue: Catalogue, precedence: Precedence) -> _Combo:
    covered = [k for i, k in enumerate(kinds) if code >> i & 1]
    lines = sorted((k for k in covered if catalogue[k].group == "line"), key=precedence.order.index)
    zones = sorted((k for k in covered if catalogue[k].group == "zone"), key=precedence.order.index)
    overlays = [k for k in covered if catalogue[k].group == "overlay"]
    effective = lines[:1] + zones[:1] + overlays
    controlling = effective[0] if effective else UNPLANNED
    disputes = []
    for i, a in enumerate(covered):
        for b in covered[i + 1:]:
            found = precedence.conflict(a, b)
            if found is not None:
                disputes.append(found)
    return _Combo(controlling, json.dumps(effective), json.dumps(covered), tuple(disputes))


def source_fragment_ends(layers: Sequence[PlanLayer]) -> tuple[list[str], list[str]]:
    """Per layer: the JSON text of a source entry before and after its ``feature_id`` value."""
    heads, tails = [], []
    for layer in layers:
        heads.append('{"kind": ' + json.dumps(layer.kind, ensure_ascii=False) + ', "layer": '
                     + json.dumps(layer.name, ensure_ascii=False) + ', "feature_id": ')
        tails.append(', "source": ' + json.dumps(layer.source, ensure_ascii=False) + ', "checksum": '
                     + json.dumps(layer.checksum) + "}")
    return heads, tails


def _source_fragments(feats: _Features, needed: np.ndarray) -> dict[int, str]:
    """JSON object text per feature; only ``feature_id`` varies within a layer, so build the rest once."""
    heads, tails = source_fragment_ends(feats.layers)
    layer_of = feats.layer[needed].tolist()
    fids = [feats.fid[f] for f in needed.tolist()]
    # plain ids (no quote, backslash or control character) encode as themselves in quotes
    plain = PLAIN_ID.fullmatch
    return {f: heads[li] + ('"' + fid + '"' if plain(fid) else json.dumps(fid, ensure_ascii=False))
            + tails[li] for f, li, fid in zip(needed.tolist(), layer_of, fids, strict=True)}


def _sources_json(pieces: _Pieces, feats: _Features) -> list[str]:
    order = np.lexsort((pieces.pair_feature, feats.kind[pieces.pair_feature], pieces.pair_piece))
    piece_sorted = pieces.pair_piece[order]
    feat_sorted = pieces.pair_feature[order]
    frags = _source_fragments(feats, np.unique(feat_sorted))
    texts = [frags[f] for f in feat_sorted.tolist()]
    starts = np.searchsorted(piece_sorted, np.arange(len(pieces.geoms) + 1)).tolist()
    return ["[" + ", ".join(texts[starts[i]:starts[i + 1]]) + "]" for i in range(len(pieces.geoms))]


def piece_area_columns(geoms: np.ndarray, crs: CRS) -> dict[str, np.ndarray]:
    """``area_m2`` (own-zone plane area, as :func:`piece_areas`) and ``ellipsoidal_area_m2`` per piece."""
    plane, ellipsoidal = zone_and_ellipsoidal_areas(geoms, crs, plane_zones(geoms, crs))
    return {"area_m2": plane, "ellipsoidal_area_m2": ellipsoidal}


def _piece_order(kind: np.ndarray, geoms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Deterministic order: controlling kind, then representative point (mm), then area."""
    pts = shapely.get_coordinates(points)
    return np.lexsort((np.round(shapely.area(geoms), 3), np.round(pts[:, 0], 3), np.round(pts[:, 1], 3),
                       kind))


def _pieces_frame(pieces: _Pieces, points: np.ndarray, feats: _Features, combos: dict[int, _Combo],
                  crs: CRS) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    kind = np.array([combos[c].kind for c in pieces.code.tolist()], dtype=object)
    order = _piece_order(kind.astype(str), pieces.geoms, points)
    sources = _sources_json(pieces, feats)
    codes = pieces.code[order].tolist()
    frame = gpd.GeoDataFrame({
        "piece_id": [f"P{i:06d}" for i in range(1, len(order) + 1)],
        "kind": kind[order],
        "kinds": [combos[c].kinds for c in codes],
        "covered_by": [combos[c].covered_by for c in codes],
        "sources": [sources[i] for i in order.tolist()],
        **piece_area_columns(pieces.geoms[order], crs),
    }, geometry=gpd.GeoSeries(pieces.geoms[order], crs=crs), crs=crs)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return frame.reset_index(drop=True), rank


# ---------------------------------------------------------------- checks and assembly


def _directed_segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ring segment of ``geoms`` (shells counter-clockwise, holes clockwise): start and end point
    ids (grid coordinates packed into one integer) and length.

    Rings are read as stored and a segment of a wrongly wound ring has its ends swapped, instead of
    ``shapely.orient_polygons`` copying every piece: GEOS reverses a ring when ``Orientation::isCCW``
    disagrees, the very test ``shapely.is_ccw`` runs, so the segments are the same. Polygons without
    holes (most pieces) are read without copying their rings at all (see :func:`_shell_coordinates`).
    """
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    coords_s, ring_s, flip_s = _shell_coordinates(geoms[simple])
    rest = geoms[~simple]
    polygons = bool((shapely.get_type_id(rest) == 3).all())  # no parts to split off (a copy each)
    rings, ring_part = shapely.get_rings(rest if polygons else shapely.get_parts(rest), return_index=True)
    exterior = np.ones(len(rings), dtype=bool)  # get_rings lists each polygon's exterior first
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    coords_r, ring_r = shapely.get_coordinates(rings, return_index=True)
    coords = np.concatenate([coords_s, coords_r])
    ring = np.concatenate([ring_s, ring_r + len(flip_s)])
    flip = np.concatenate([flip_s, shapely.is_ccw(rings) != exterior])
    if len(coords) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    grid = np.round(coords / GRID_M).astype(np.int64)
    grid -= grid.min(axis=0)
    # the city is far smaller than 2**31 grid steps a side, so a point packs into one int64
    point = grid[:, 0] * (int(grid[:, 1].max()) + 1) + grid[:, 1]
    same = ring[1:] == ring[:-1]
    step = coords[1:][same] - coords[:-1][same]
    first, second = point[:-1][same], point[1:][same]
    rev = flip[ring[1:][same]]
    return np.where(rev, second, first), np.where(rev, first, second), np.hypot(step[:, 0], step[:, 1])


def _shell_coordinates(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of polygons without holes, their polygon index and whether each shell is clockwise
    (to be flipped). The winding is the sign of the shoelace sum; where rounding could make that sign
    wrong (a sum within 1e-9 of the sum of its terms' sizes) GEOS ``is_ccw`` decides, as for the rest."""
    coords, ring = shapely.get_coordinates(polys, return_index=True)
    if len(coords) == 0:
        return coords, ring, np.zeros(len(polys), dtype=bool)
    local = coords - coords[np.searchsorted(ring, ring)]  # about each ring's first vertex: small error
    same = ring[1:] == ring[:-1]
    terms = local[:-1, 0] * local[1:, 1] - local[1:, 0] * local[:-1, 1]
    owner = ring[1:][same]
    twice_area = np.bincount(owner, weights=terms[same], minlength=len(polys))
    size = np.bincount(owner, weights=np.abs(terms[same]), minlength=len(polys))
    ccw = twice_area > 0
    unsure = np.flatnonzero(np.abs(twice_area) <= 1e-9 * size)
    if len(unsure):
        ccw[unsure] = shapely.is_ccw(shapely.get_exterior_ring(polys[unsure]))
    return coords, ring, ~ccw


def edges_match(geoms: np.ndarray, outline_length: float) -> bool:
    """Linear-time coverage test: inner edges pair up, the rest is exactly the city outline.

    Each valid piece winds +1 around its own interior. If every directed segment occurs once and every
    segment not on the outline is cancelled by its reverse in a neighbour, the pieces' winding numbers
    add up to that of the outline alone: every point is covered exactly once — no overlap, no gap, and
    shared edges match vertex for vertex (what ``shapely.coverage_is_valid`` asks, without its cost on
    pieces with many holes).
    """
    start, end, length = _directed_segments(geoms)
    lo, hi, forward = np.minimum(start, end), np.maximum(start, end), start < end
    order = np.lexsort((hi, lo))
    lo, hi, forward, length = lo[order], hi[order], forward[order], length[order]
    twin = (lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])  # segment i and i + 1 are the same edge
    if (twin[1:] & twin[:-1]).any() or (twin & (forward[1:] == forward[:-1])).any():
        return False  # an edge used three times, or twice in the same direction: pieces overlap
    paired = np.zeros(len(lo), dtype=bool)
    paired[:-1] |= twin
    paired[1:] |= twin
    residual = float(length[~paired].sum())
    return abs(residual - outline_length) <= 1e-7 * max(outline_length, 1.0) + 10 * GRID_M


def verify_partition(geoms: np.ndarray, reference_area: float, outline_length: float | None = None) -> None:
    """Raise :class:`CoverageCheckError` unless ``geoms`` are valid, non-overlapping and fill the area.

    Up to ``GEOS_CHECK_MAX`` pieces (or when the outline is unknown) GEOS ``coverage_is_valid`` decides;
    above, the equivalent linear edge test against the city outline does.
    """
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        raise CoverageCheckError(f"merge produced {int(invalid.sum())} invalid piece(s)",
                                 detail=str(shapely.is_valid_reason(geoms[invalid][0])))
    if len(geoms) <= GEOS_CHECK_MAX or outline_length is None:
        if not shapely.coverage_is_valid(geoms):
            bad = ~shapely.is_empty(shapely.coverage_invalid_edges(geoms))
            raise CoverageCheckError(
                f"merged pieces overlap or mismatch along the edges of {int(bad.sum())} piece(s)")
    if outline_length is not None and not edges_match(geoms, outline_length):
        raise CoverageCheckError("merged pieces overlap, leave a gap or mismatch along a shared edge "
                                 "(edge test against the city outline failed)")
    total = float(shapely.area(geoms).sum())
    # snapping to the GRID_M grid may move each outline vertex by up to GRID_M; the area may shift by
    # up to that much along the whole outline, and by no more
    allowed = AREA_RTOL * max(reference_area, 1.0) + (outline_length or 0.0) * GRID_M
    if abs(total - reference_area) > allowed:
        raise CoverageCheckError(
            f"merged pieces cover {total:.3f} m², the city area is {reference_area:.3f} m² (gap or overlap)")


def _absorbed_dicts(absorbed: list[tuple[int, Any]], rank: np.ndarray, frame: gpd.GeoDataFrame,
                    feats: _Features) -> tuple[dict[str, Any], ...]:
    out = []
    for receiver, rec in absorbed:
        row = frame.iloc[int(rank[receiver])]
        was = sorted({feats.kinds[feats.kind[f]] for f in rec.features}, key=feats.kinds.index)
        out.append({"piece_id": row["piece_id"], "into_kind": row["kind"], "area_m2": round(rec.area_m2, 4),
                    "was": was or [UNPLANNED],
                    "features": [{"kind": feats.kinds[feats.kind[f]], "feature_id": feats.fid[f]}
                                 for f in rec.features],
                    "x": round(rec.point[0], 3), "y": round(rec.point[1], 3)})
    return tuple(sorted(out, key=lambda d: (d["piece_id"], d["y"], d["x"])))


def attributed_kind(kind: str, catalogue: Catalogue) -> bool:
    """Kinds with attribute fields are carried per feature (blueprint.features), not partitioned."""
    return kind in catalogue and bool(catalogue[kind].fields)


def build_blueprint(layers: Sequence[PlanLayer], *, catalogue: Catalogue, precedence: Precedence,
                    tolerance_m: float, version: str, created_by: str = "system",
                    boundary: PlanLayer | None = None,
                    progress: Progress | None = None, cell_size_m: float | None = None,
                    workers: int | None = None) -> Blueprint:
    """Merge ``layers`` into a draft :class:`Blueprint` (pieces, conflicts, absorbed slivers).

    The city (``boundary`` if given, else the union of the layers) is cut into grid cells of about
    ``FEATURES_PER_CELL`` features (or ``cell_size_m``); each cell is partitioned on its own, so pieces
    are maximal within a cell but split along cell lines (seams stitched so vertices match on both
    sides). Conflicts are dissolved across cells.
    ``workers`` threads (default: up to 2) partition the cells.
    """
    report: Progress = progress or (lambda _stage, _fraction: None)
    report("检查输入 checking input", 0.0)
    carried = [attributed_kind(lay.kind, catalogue) for lay in layers]  # 控规地块, 区域评估: per feature
    feature_layers = [lay for lay, c in zip(layers, carried, strict=True) if c]
    layers = [lay for lay, c in zip(layers, carried, strict=True) if not c]
    plan, bounds = _check_inputs(layers, boundary, catalogue, precedence, tolerance_m)
    check_feature_layers(feature_layers, plan[0].frame)
    feats = _flatten(plan, bounds, catalogue)
    crs = CRS.from_user_input(plan[0].frame.crs)
    threads = workers if workers is not None else min(2, os.cpu_count() or 1)
    parts, xs, ys = _partition(feats, precedence, tolerance_m, cell_size_m, threads, report)
    pieces, absorbed = _concat(parts, feats)
    pieces.geoms, stitched = stitch_seams(pieces.geoms, xs, ys)
    report("校验覆盖 verifying coverage", 0.82)
    outline: float | None = None
    if feats.is_boundary.any():
        city = shapely.union_all(feats.geoms[feats.is_boundary], grid_size=GRID_M)
        reference, outline = float(shapely.area(city)), float(shapely.length(city))
    else:
        reference = sum(p.reference_area for p in parts)

    def check() -> None:
        verify_partition(pieces.geoms, reference, outline)

    def assemble() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, np.ndarray]:
        combos = {c: _combo(c, feats.kinds, catalogue, precedence) for c in np.unique(pieces.code).tolist()}
        report("差异图斑 finding conflicts", 0.88)
        points = shapely.point_on_surface(pieces.geoms)  # one interior point per piece, used twice
        conflicts = _conflicts_frame(_conflict_rows(pieces, points, feats, combos, catalogue, crs), crs)
        report("整理图斑 assembling pieces", 0.94)
        frame, rank = _pieces_frame(pieces, points, feats, combos, crs)
        return conflicts, frame, rank

    if threads > 1:
        # the coverage check is GEOS and numpy work (GIL released) and reads the pieces only: it runs
        # beside the conflicts and attributes, and its verdict still comes first
        with ThreadPoolExecutor(max_workers=1) as pool:
            verdict = pool.submit(check)
            try:
                conflicts, frame, rank = assemble()
            except Exception:
                verdict.result()  # an invalid coverage explains the failure better
                raise
            verdict.result()
    else:
        check()
        conflicts, frame, rank = assemble()
    features = condition_features(feature_layers, crs)
    conflicts = with_plan_conflicts(conflicts, features, frame, precedence, catalogue, feats.layers,
                                    tolerance_m, crs)
    refs = tuple(LayerRef(lay.kind, lay.name, lay.source, lay.checksum, len(lay.frame))
                 for lay in [*feats.layers, *feature_layers])
    blueprint = Blueprint(
        version=version, crs=crs, pieces=frame, conflicts=conflicts, layers=refs,
        precedence=precedence.order, tolerance_m=tolerance_m, status="draft", created_by=created_by,
        created_at=datetime.now(UTC), absorbed=_absorbed_dicts(absorbed, rank, frame, feats),
        meta={"cells": (len(xs) - 1) * (len(ys) - 1), "stitched_pieces": stitched,
              "city_area_m2": round(reference, 3),
              "boundary": bounds[0].name if bounds else None,
              "feature_layers": [lay.name for lay in feature_layers]},
        features=features,
    )
    report("完成 done", 1.0)
    return blueprint
