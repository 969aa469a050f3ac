"""blueprint.batches: the out-of-core build's per-batch tasks — partition cells, stitch, verify, write."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

from blueprint.batch_conflicts import batch_conflicts
from blueprint.coverage import GRID_M, Seams, partition_cell, seam_points, stitch_seams
from blueprint.errors import CoverageCheckError
from blueprint.merge import (
    PIECE_COLUMNS,
    UNPLANNED,
    _combo,
    _Features,
    _Pieces,
    cell_boxes,
    edges_match,
    piece_area_columns,
)
from blueprint.piece_table import pieces_table
from blueprint.precedence import Precedence
from blueprint.workfiles import read_table, write_table
from layers.catalogue import Catalogue
from layers.model import PlanLayer


@dataclass(frozen=True)
class Plan:
    """What every batch task needs to know (small, pickled to the dask workers)."""

    work: Path
    xs: np.ndarray
    ys: np.ndarray
    row_starts: tuple[int, ...]  # batch b holds grid rows row_starts[b] .. row_starts[b + 1] - 1
    kinds: tuple[str, ...]
    layers: tuple[PlanLayer, ...]  # frames emptied: names, kinds, sources and checksums only
    kind_priority: np.ndarray  # per kind index, and the boundary (-1) last
    tolerance_m: float
    crs: CRS
    city: Any  # the city outline (union of the boundary, on the grid), or None without a boundary
    catalogue: Catalogue
    precedence: Precedence

    def batch_dir(self, b: int) -> Path:
        return self.work / f"batch-{b:05d}"



# ---------------------------------------------------------------- pass 1: cells


def _batch_features(plan: Plan, b: int, *, geometry: bool = True,
                    ids: bool = True) -> tuple[_Features, np.ndarray]:
    """The batch's spilled features in global order (local arrays) and their global ids; without
    ``geometry`` only their attributes (what the sources and conflicts need), without ``ids`` no
    feature ids (what partitioning the cells does without)."""
    files = sorted(plan.batch_dir(b).glob("spill-*.arrow"))
    if not files:
        return _Features(
            np.empty(0, object),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            [],
            np.empty(0, bool),
            list(plan.kinds),
            list(plan.layers),
        ), np.empty(0, np.int64)
    columns = ["gid", "layer", *(["feature_id"] if ids else []), *(["wkb"] if geometry else [])]
    table = pa.concat_tables([read_table(f, columns) for f in files])
    gid = table["gid"].to_numpy()
    if (np.diff(gid) < 0).any():  # files come in chunk order, which is the global order: rarely taken
        table = table.take(pa.array(np.argsort(gid, kind="stable")))
        gid = table["gid"].to_numpy()
    layer = table["layer"].to_numpy().astype(np.int64)
    kind_of_layer = np.array(
        [
            plan.kinds.index(lay.kind) if i < len(plan.layers) - _n_bounds(plan) else -1
            for i, lay in enumerate(plan.layers)
        ],
        dtype=np.int64,
    )
    if geometry:
        geoms = np.asarray(shapely.from_wkb(table["wkb"].to_numpy(zero_copy_only=False)), dtype=object)
    else:
        geoms = np.empty(len(gid), dtype=object)
    feats = _Features(
        geoms,
        kind_of_layer[layer],
        layer,
        table["feature_id"].to_pylist() if ids else [],
        kind_of_layer[layer] < 0,
        list(plan.kinds),
        list(plan.layers),
    )
    return feats, gid


def _n_bounds(plan: Plan) -> int:
    return sum(1 for lay in plan.layers if lay.meta.get("boundary"))


def _batch_cells(plan: Plan, b: int) -> tuple[np.ndarray, int]:
    """The batch's cell boxes (row by row) and the global index of its first cell."""
    r0, r1 = plan.row_starts[b], plan.row_starts[b + 1]
    nx = len(plan.xs) - 1
    return cell_boxes(plan.xs, plan.ys[r0 : r1 + 1]), r0 * nx


def partition_batch(plan: Plan, b: int) -> dict[str, Any]:
    """Pass 1 task: partition the batch's cells; raw faces to disk; the seam vertices back."""
    feats, _gid = _batch_features(plan, b, ids=False)
    cells, _first = _batch_cells(plan, b)
    parts = []
    if len(feats.geoms):
        bounds = shapely.bounds(feats.geoms)
        cell_i, feat_i = shapely.STRtree(feats.geoms).query(cells)
        order = np.lexsort((feat_i, cell_i))
        cell_i, feat_i = cell_i[order], feat_i[order]
        starts = np.searchsorted(cell_i, np.arange(len(cells) + 1))
        priority = plan.kind_priority[feats.kind]
        for c in range(len(cells)):
            if starts[c + 1] > starts[c]:
                parts.append(
                    partition_cell(
                        cells[c],
                        feat_i[starts[c] : starts[c + 1]],
                        feats.geoms,
                        bounds,
                        is_boundary=feats.is_boundary,
                        priority=priority,
                        tolerance_m=plan.tolerance_m,
                    )
                )
    offsets = np.cumsum([0] + [len(p.faces) for p in parts])
    faces = np.concatenate([p.faces for p in parts]) if parts else np.empty(0, dtype=object)
    raw = {
        "faces": shapely.to_wkb(faces) if len(faces) else np.empty(0, object),
        "pair_piece": np.concatenate(
            [p.pair_face + o for p, o in zip(parts, offsets, strict=False)] or [np.empty(0, np.int64)]
        ),
        "pair_feature": np.concatenate([p.pair_feature for p in parts] or [np.empty(0, np.int64)]),
        "absorbed": [
            (int(o) + a.receiver, a) for p, o in zip(parts, offsets, strict=False) for a in p.absorbed
        ],
        "reference": sum(p.reference_area for p in parts),
    }
    plan.batch_dir(b).mkdir(parents=True, exist_ok=True)  # a band no feature reaches has no spill
    with open(plan.batch_dir(b) / "raw.pickle", "wb") as fh:
        pickle.dump(raw, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {"batch": b, "faces": len(faces), "seams": seam_points(faces, plan.xs, plan.ys)}


# ---------------------------------------------------------------- pass 2: stitch, verify, attributes


def _verify_batch(plan: Plan, b: int, geoms: np.ndarray, reference: float) -> None:
    """The batch's pieces are valid and tile the city inside the batch's band exactly."""
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        raise CoverageCheckError(
            f"merge produced {int(invalid.sum())} invalid piece(s) in batch {b}",
            detail=str(shapely.is_valid_reason(geoms[invalid][0])),
        )
    if len(geoms) == 0:
        return
    total = float(shapely.area(geoms).sum())
    if plan.city is not None:
        r0, r1 = plan.row_starts[b], plan.row_starts[b + 1]
        band = shapely.box(plan.xs[0], plan.ys[r0], plan.xs[-1], plan.ys[r1])
        region = shapely.intersection(plan.city, band, grid_size=GRID_M)
        reference, outline = float(shapely.area(region)), float(shapely.length(region))
        if not edges_match(geoms, outline):
            raise CoverageCheckError(
                f"merged pieces overlap, leave a gap or mismatch along a shared edge in "
                f"batch {b} (edge test against the city outline failed)"
            )
    else:
        outline = 0.0
        if not shapely.coverage_is_valid(geoms):
            raise CoverageCheckError(f"merged pieces overlap or mismatch along an edge in batch {b}")
    if abs(total - reference) > 1e-9 * max(reference, 1.0) + outline * GRID_M:
        raise CoverageCheckError(
            f"merged pieces of batch {b} cover {total:.3f} m², the city there is "
            f"{reference:.3f} m² (gap or overlap)"
        )


def finish_batch(plan: Plan, b: int, seams: Seams) -> dict[str, Any]:
    """Pass 2 task: stitch, verify, attributes and areas; the pieces to disk, keys and disputes back."""
    with open(plan.batch_dir(b) / "raw.pickle", "rb") as fh:
        raw = pickle.load(fh)
    feats, _gid = _batch_features(plan, b, geometry=False)
    faces = np.asarray(shapely.from_wkb(raw["faces"]), dtype=object) if len(raw["faces"]) else raw["faces"]
    faces, stitched = stitch_seams(faces, plan.xs, plan.ys, seams)
    _verify_batch(plan, b, faces, raw["reference"])
    code = np.zeros(len(faces), dtype=np.int64)
    np.bitwise_or.at(code, raw["pair_piece"], np.left_shift(1, feats.kind[raw["pair_feature"]]))
    pieces = _Pieces(faces, raw["pair_piece"], raw["pair_feature"], code)
    combos = {
        c: _combo(c, list(plan.kinds), plan.catalogue, plan.precedence) for c in np.unique(code).tolist()
    }
    kind = np.array([combos[c].kind for c in code.tolist()], dtype=object)
    points = shapely.get_coordinates(shapely.point_on_surface(faces)) if len(faces) else np.empty((0, 2))
    keys = sort_keys(plan, b, kind, points, faces)
    # the rows go to disk in the batch's piece order, which is the id order unless two batches' keys
    # interleave: pass 4 then adds the ids without reordering the rows
    order = keys.pop("order")
    np.save(plan.batch_dir(b) / "order.npy", order)
    write_table(_ordered_table(pieces, order, feats, combos, piece_area_columns(faces, plan.crs), plan.crs),
                plan.batch_dir(b) / "pieces.arrow")
    r0, r1 = plan.row_starts[b], plan.row_starts[b + 1]
    band = (float(plan.ys[r0]) if b > 0 else -np.inf, float(plan.ys[r1]) if r1 < len(plan.ys) - 1 else np.inf)
    return {
        "batch": b,
        "stitched": stitched,
        **keys,
        "conflicts": batch_conflicts(pieces, shapely.points(points), feats, combos, plan.catalogue, plan.crs,
                                     band),
        "absorbed": [_absorbed_partial(rec, receiver, feats, kind) for receiver, rec in raw["absorbed"]],
        "reference": raw["reference"],
    }


def sort_keys(plan: Plan, b: int, kind: np.ndarray, points: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """The batch's pieces in the blueprint's piece order (see merge._piece_order): each piece's position
    among the batch's pieces of its kind, the count per kind and each kind's first and last key. The
    keys themselves go to ``keys.npz`` (read back only if two batches' keys interleave)."""
    names = np.array(_kind_names(plan))
    k = np.searchsorted(names, kind.astype(str)).astype(np.int16)  # sorts as the names do
    y, x, a = np.round(points[:, 1], 3), np.round(points[:, 0], 3), np.round(shapely.area(faces), 3)
    np.savez(plan.batch_dir(b) / "keys.npz", kind=k, x=x, y=y, area=a)
    order = np.lexsort((a, x, y, k))
    counts = np.bincount(k, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order)) - starts[k[order]]
    ends = {int(c): (tuple(float(v[order[starts[c]]]) for v in (y, x, a)),
                     tuple(float(v[order[starts[c + 1] - 1]]) for v in (y, x, a)))
            for c in np.flatnonzero(counts).tolist()}
    return {"kind": k, "position": position, "counts": counts, "ends": ends, "order": order}


def _ordered_table(pieces: _Pieces, order: np.ndarray, feats: _Features, combos: dict[int, Any],
                   areas: dict[str, np.ndarray], crs: CRS) -> Any:
    """:func:`pieces_table` with the rows in ``order`` (pieces renumbered, not their table reordered)."""
    row = np.empty(len(order), dtype=np.int64)
    row[order] = np.arange(len(order))
    ordered = _Pieces(pieces.geoms[order], row[pieces.pair_piece], pieces.pair_feature, pieces.code[order])
    return pieces_table(ordered, feats, combos, {k: v[order] for k, v in areas.items()}, crs)


def finish_batch_with(shared: tuple[Plan, Seams], b: int) -> dict[str, Any]:
    """:func:`finish_batch` with the plan and the seams sent to the workers once."""
    return finish_batch(shared[0], b, shared[1])


def _absorbed_partial(rec: Any, receiver: int, feats: _Features, kind: np.ndarray) -> dict[str, Any]:
    was = sorted({feats.kinds[feats.kind[f]] for f in rec.features}, key=feats.kinds.index)
    return {
        "receiver": receiver,
        "into_kind": str(kind[receiver]),
        "area_m2": round(rec.area_m2, 4),
        "was": was or ["unplanned"],
        "features": [{"kind": feats.kinds[feats.kind[f]], "feature_id": feats.fid[f]} for f in rec.features],
        "x": round(rec.point[0], 3),
        "y": round(rec.point[1], 3),
    }




def _kind_names(plan: Plan) -> list[str]:
    """Every controlling kind a piece can have, sorted."""
    return sorted({*plan.kinds, UNPLANNED})




def write_part(plan: Plan, b: int, rank: np.ndarray, out: Path) -> dict[str, Any]:
    """Pass 4 task: the batch's pieces with their ids, in id order, as ``out/pieces/part-NNNNN.parquet``."""
    # arrow, not geopandas: the geometry column's WKB is reordered, never decoded and encoded again
    table = read_table(plan.batch_dir(b) / "pieces.arrow")
    rank = rank[np.load(plan.batch_dir(b) / "order.npy")]  # the rows' ranks (rows are in batch order)
    order = np.argsort(rank, kind="stable")
    ids = pa.array([f"P{i:06d}" for i in (rank[order] + 1).tolist()], pa.string())
    if (np.diff(order) < 0).any():  # two batches' keys interleaved: the global order differs
        table = table.take(pa.array(order))
    table = table.add_column(0, "piece_id", ids).select(PIECE_COLUMNS)
    path = out / "pieces" / f"part-{b:05d}.parquet"
    pq.write_table(table, path)
    sums = table.select(["kind", "area_m2", "ellipsoidal_area_m2"]).to_pandas().groupby("kind").sum()
    return {"path": path, "count": table.num_rows, "by_kind": sums["area_m2"].to_dict(),
            "ellipsoidal_by_kind": sums["ellipsoidal_area_m2"].to_dict()}

