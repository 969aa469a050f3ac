"""blueprint.partitioned: the merge out of core — grid cells in batches read from and written to GeoParquet.

The same grid, cells, seam stitching, precedence and conflicts as :func:`blueprint.merge.build_blueprint`
(and the same result: pieces, areas, ids and conflicts), but no step holds the whole province:

0. one pass over the input (in-memory layers or GeoParquet parts) spills each feature to the batches
   (bands of grid rows) its box reaches, and keeps the vertex coordinates near the cell lines;
1. per batch (a task): partition its cells, keep the raw faces on disk, report the vertices on cell lines;
2. per batch (a task): stitch the seams with every batch's seam vertices, verify the batch's coverage,
   compute attributes and areas, write the pieces; report the sort keys and the disputed pieces only;
3. in the driver: piece ids from the global order; conflicts dissolved from the disputed pieces;
4. per batch (a task): write ``<out>/pieces/part-NNNNN.parquet`` with the piece ids.

Tasks run on threads in process or as dask tasks (:mod:`blueprint.tasks`); memory is bounded by a batch
plus the disputed pieces (conflicts are dissolved across the whole blueprint).
"""

from __future__ import annotations

import math
import pickle
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

from blueprint.coverage import GRID_M, Seams, merge_seams, partition_cell, seam_points, stitch_seams
from blueprint.errors import CoverageCheckError, MergeInputError
from blueprint.merge import (
    PIECE_COLUMNS,
    UNPLANNED,
    Progress,
    _check_geometries,
    _check_inputs,
    _Combo,
    _combo,
    _conflict_rows,
    _conflicts_frame,
    _Features,
    _free_lines,
    _Pieces,
    _priority,
    _sources_json,
    attributed_kind,
    cell_boxes,
    edges_match,
    grid_margin,
    grid_shape,
    piece_areas,
)
from blueprint.model import Blueprint, LayerRef
from blueprint.precedence import Precedence
from blueprint.tasks import Runner, local_runner
from layers.catalogue import Catalogue
from layers.crs import assert_same_crs
from layers.model import PlanLayer

BATCH_FEATURES = 120_000  # features per batch of grid rows: a batch's arrays and pieces stay < ~1 GB
CHUNK_ROWS = 200_000  # rows of an in-memory layer spilled at a time
LINE_WINDOW = 1000  # grid steps (1 m) either side of a cell line whose vertices are kept to place it
SPILL_MARGIN_M = 2.0 * LINE_WINDOW * GRID_M  # a cell line moves < 1 m off its first position


@dataclass(frozen=True)
class Source:
    """One input layer: its metadata (``layer.frame`` may be empty) and where its rows come from."""

    layer: PlanLayer
    parts: tuple[Path, ...] = ()  # GeoParquet files with feature_id + geometry; none: ``layer.frame``

    @property
    def count(self) -> int:
        if not self.parts:
            return len(self.layer.frame)
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts)

    def chunks(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """(feature ids, geometries) a part or CHUNK_ROWS rows at a time."""
        if not self.parts:
            frame = self.layer.frame
            for start in range(0, len(frame), CHUNK_ROWS):
                part = frame.iloc[start : start + CHUNK_ROWS]
                yield [str(v) for v in part["feature_id"]], np.asarray(part.geometry.values, dtype=object)
            return
        for path in self.parts:
            try:
                frame = gpd.read_parquet(path, columns=["feature_id", "geometry"])
            except (OSError, ValueError, KeyError) as exc:
                raise MergeInputError(
                    f"layer '{self.layer.name}': cannot read part {path.name} as GeoParquet "
                    f"with feature_id and geometry ({exc})"
                ) from exc
            if self.layer.frame.crs is not None and frame.crs is not None:
                assert_same_crs(
                    self.layer.frame, frame, what=f"layer '{self.layer.name}' and its part {path.name}"
                )
            # parts come from files, not from a checked layer: the merge's geometry check, a part at a time
            _check_geometries(replace(self.layer, frame=frame))
            yield [str(v) for v in frame["feature_id"]], np.asarray(frame.geometry.values, dtype=object)


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


@dataclass
class PartitionedBuild:
    """A built blueprint whose pieces live in GeoParquet parts (``blueprint.pieces`` is left empty)."""

    blueprint: Blueprint
    parts: list[Path] = field(default_factory=list)
    piece_count: int = 0
    area_by_kind: dict[str, float] = field(default_factory=dict)

    def pieces(self) -> gpd.GeoDataFrame:
        """All pieces in one frame, by piece id (for small builds and tests)."""
        frames = [gpd.read_parquet(p) for p in self.parts]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PIECE_COLUMNS)
        out = gpd.GeoDataFrame(frame, geometry="geometry", crs=self.blueprint.crs)
        return out.sort_values("piece_id").reset_index(drop=True)


# ---------------------------------------------------------------- pass 0: grid and spill


def _extent(sources: Sequence[Source], is_boundary: Sequence[bool]) -> tuple[float, float, float, float]:
    """The boundary's extent if there is one, else every layer's, from the data or the parquet metadata."""
    chosen = [s for s, b in zip(sources, is_boundary, strict=True) if b] or list(sources)
    boxes = []
    for s in chosen:
        if not s.parts:
            if len(s.layer.frame):
                boxes.append(shapely.bounds(np.asarray(s.layer.frame.geometry.values, dtype=object)))
            continue
        for chunk_ids, geoms in s.chunks():  # exact bounds: the metadata's bbox may be rounded
            boxes.append(shapely.bounds(geoms))
            del chunk_ids
    b = np.vstack(boxes)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _near(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The ``values`` within LINE_WINDOW grid steps of one of the sorted ``steps``."""
    at = np.searchsorted(steps, values)
    lo = np.abs(values - steps[np.clip(at - 1, 0, len(steps) - 1)])
    hi = np.abs(values - steps[np.clip(at, 0, len(steps) - 1)])
    return values[np.minimum(lo, hi) <= LINE_WINDOW]


def _placed(start: float, stop: float, n: int, taken: np.ndarray) -> np.ndarray:
    lines = _free_lines(start, stop, n, taken)
    first = np.round(np.linspace(start, stop, n + 1) / GRID_M)
    if np.abs(np.round(lines / GRID_M) - first).max() >= LINE_WINDOW:
        raise CoverageCheckError(
            "a cell line moved more than a metre to avoid vertices; build this blueprint in memory"
        )
    return lines


def _spill(
    sources: Sequence[Source], plan_count: int, work: Path, shape: Any, rows_per_batch: int, report: Progress
) -> tuple[np.ndarray, np.ndarray, int]:
    """Write each feature to the spill of every batch band its box reaches (grown by SPILL_MARGIN_M);
    return the vertex grid positions near the first cell lines (x, y) and the number of batches."""
    _x, (ymin, ymax, ny) = shape
    steps = [np.round(np.linspace(a, b, n + 1) / GRID_M).astype(np.int64) for a, b, n in shape]
    first_ys = np.linspace(ymin, ymax, ny + 1)
    n_batches = math.ceil(ny / rows_per_batch)
    band_lo = first_ys[np.arange(n_batches) * rows_per_batch] - SPILL_MARGIN_M
    band_hi = first_ys[np.minimum((np.arange(n_batches) + 1) * rows_per_batch, ny)] + SPILL_MARGIN_M
    taken: list[list[np.ndarray]] = [[], []]
    gid, chunk_no = 0, 0
    total = sum(s.count for s in sources)
    for li, source in enumerate(sources):
        kind = -1 if li >= plan_count else li
        for fids, geoms in source.chunks():
            grid = np.round(shapely.get_coordinates(geoms) / GRID_M).astype(np.int64)
            for axis in (0, 1):
                taken[axis].append(np.unique(_near(grid[:, axis], steps[axis])))
            bounds = shapely.bounds(geoms)
            first = np.searchsorted(band_hi, bounds[:, 1], side="left")  # first band whose top ≥ ymin
            last = np.searchsorted(band_lo, bounds[:, 3], side="right") - 1  # last band whose bottom ≤ ymax
            wkb = shapely.to_wkb(geoms)
            ids = np.arange(gid, gid + len(geoms), dtype=np.int64)
            for b in range(int(first.min(initial=n_batches)), int(last.max(initial=-1)) + 1):
                rows = np.flatnonzero((first <= b) & (last >= b))
                if len(rows) == 0:
                    continue
                table = pa.table(
                    {
                        "gid": ids[rows],
                        "layer": np.full(len(rows), li, dtype=np.int32),
                        "kind": np.full(len(rows), kind, dtype=np.int32),
                        "feature_id": pa.array([fids[i] for i in rows.tolist()], pa.string()),
                        "wkb": pa.array(wkb[rows].tolist(), pa.binary()),
                    }
                )
                (work / f"batch-{b:05d}").mkdir(parents=True, exist_ok=True)
                pq.write_table(table, work / f"batch-{b:05d}" / f"spill-{chunk_no:05d}.parquet")
            gid += len(geoms)
            chunk_no += 1
            report("分区读取 reading partitions", 0.05 * gid / max(total, 1))
    cat = [np.unique(np.concatenate(t)) if t else np.empty(0, np.int64) for t in taken]
    return cat[0], cat[1], n_batches


def _layer_kinds(sources: Sequence[Source], plan_count: int, catalogue: Catalogue) -> list[str]:
    return [k for k in catalogue if any(s.layer.kind == k for s in sources[:plan_count])]


# ---------------------------------------------------------------- pass 1: cells


def _batch_features(plan: Plan, b: int, *, geometry: bool = True) -> tuple[_Features, np.ndarray]:
    """The batch's spilled features in global order (local arrays) and their global ids; without
    ``geometry`` only their attributes (what the sources and conflicts need)."""
    files = sorted(plan.batch_dir(b).glob("spill-*.parquet"))
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
    columns = ["gid", "layer", "feature_id", *(["wkb"] if geometry else [])]
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    gid = table["gid"].to_numpy()
    order = np.argsort(gid, kind="stable")
    layer = table["layer"].to_numpy().astype(np.int64)[order]
    kind_of_layer = np.array(
        [
            plan.kinds.index(lay.kind) if i < len(plan.layers) - _n_bounds(plan) else -1
            for i, lay in enumerate(plan.layers)
        ],
        dtype=np.int64,
    )
    fids = table["feature_id"].to_pylist()
    if geometry:
        geoms = np.asarray(
            shapely.from_wkb(np.asarray(table["wkb"].to_pylist(), dtype=object)[order]), dtype=object
        )
    else:
        geoms = np.empty(len(order), dtype=object)
    feats = _Features(
        geoms,
        kind_of_layer[layer],
        layer,
        [fids[i] for i in order.tolist()],
        kind_of_layer[layer] < 0,
        list(plan.kinds),
        list(plan.layers),
    )
    return feats, gid[order]


def _n_bounds(plan: Plan) -> int:
    return sum(1 for lay in plan.layers if lay.meta.get("boundary"))


def _batch_cells(plan: Plan, b: int) -> tuple[np.ndarray, int]:
    """The batch's cell boxes (row by row) and the global index of its first cell."""
    r0, r1 = plan.row_starts[b], plan.row_starts[b + 1]
    nx = len(plan.xs) - 1
    return cell_boxes(plan.xs, plan.ys[r0 : r1 + 1]), r0 * nx


def partition_batch(plan: Plan, b: int) -> dict[str, Any]:
    """Pass 1 task: partition the batch's cells; raw faces to disk; the seam vertices back."""
    feats, _gid = _batch_features(plan, b)
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
    feats, gid = _batch_features(plan, b, geometry=False)
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
    frame = gpd.GeoDataFrame(
        {
            "kind": kind,
            "kinds": [combos[c].kinds for c in code.tolist()],
            "covered_by": [combos[c].covered_by for c in code.tolist()],
            "sources": _sources_json(pieces, feats) if len(faces) else [],
            "area_m2": piece_areas(faces, plan.crs),
        },
        geometry=gpd.GeoSeries(faces, crs=plan.crs),
        crs=plan.crs,
    )
    frame.to_parquet(plan.batch_dir(b) / "pieces.parquet")
    disputed = (
        np.flatnonzero([bool(combos[c].disputes) for c in code.tolist()])
        if len(code)
        else np.empty(0, np.int64)
    )
    keep = np.isin(pieces.pair_piece, disputed)
    renumber = np.full(len(faces), -1, dtype=np.int64)
    renumber[disputed] = np.arange(len(disputed))
    return {
        "batch": b,
        "stitched": stitched,
        "combos": combos,
        # the controlling kind as its rank among the sorted kind names: sorts as the names do, 1 byte each
        "kind": np.searchsorted(np.array(_kind_names(plan)), kind.astype(str)).astype(np.int16),
        "x": points[:, 0],
        "y": points[:, 1],
        "plane_area": shapely.area(faces),
        "disputed": {
            "wkb": shapely.to_wkb(faces[disputed]) if len(disputed) else np.empty(0, object),
            "code": code[disputed],
            "pair_piece": renumber[pieces.pair_piece[keep]],
            "pair_gid": gid[pieces.pair_feature[keep]],
            "feature": _feature_table(feats, gid, pieces.pair_feature[keep]),
        },
        "absorbed": [_absorbed_partial(rec, receiver, feats, kind) for receiver, rec in raw["absorbed"]],
        "reference": raw["reference"],
    }


def finish_batch_with(shared: tuple[Plan, Seams], b: int) -> dict[str, Any]:
    """:func:`finish_batch` with the plan and the seams sent to the workers once."""
    return finish_batch(shared[0], b, shared[1])


def _feature_table(feats: _Features, gid: np.ndarray, local: np.ndarray) -> dict[int, tuple[int, int, str]]:
    """gid → (kind, layer, feature id) for the given local features."""
    return {
        int(gid[f]): (int(feats.kind[f]), int(feats.layer[f]), feats.fid[f])
        for f in np.unique(local).tolist()
    }


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


# ---------------------------------------------------------------- pass 3: ids and conflicts


def _kind_names(plan: Plan) -> list[str]:
    """Every controlling kind a piece can have, sorted."""
    return sorted({*plan.kinds, UNPLANNED})


def _ranks(results: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """Per batch: each piece's position in the blueprint's piece order (see merge._piece_order)."""
    kind = np.concatenate([r["kind"] for r in results]) if results else np.empty(0, np.int16)
    xs = np.concatenate([r["x"] for r in results]) if results else np.empty(0)
    ys = np.concatenate([r["y"] for r in results]) if results else np.empty(0)
    area = np.concatenate([r["plane_area"] for r in results]) if results else np.empty(0)
    order = np.lexsort((np.round(area, 3), np.round(xs, 3), np.round(ys, 3), kind))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    sizes = np.cumsum([0] + [len(r["kind"]) for r in results])
    return [rank[sizes[i] : sizes[i + 1]] for i in range(len(results))]


def _conflicts(results: Sequence[dict[str, Any]], plan: Plan) -> gpd.GeoDataFrame:
    """The conflict table from every batch's disputed pieces, in global piece order."""
    table: dict[int, tuple[int, int, str]] = {}
    for r in results:
        table.update(r["disputed"]["feature"])
    gids = np.array(sorted(table), dtype=np.int64)
    geoms, code, pair_piece, pair_feature = [], [], [], []
    offset = 0
    for r in results:
        d = r["disputed"]
        if len(d["wkb"]):
            geoms.append(np.asarray(shapely.from_wkb(d["wkb"]), dtype=object))
        code.append(d["code"])
        pair_piece.append(d["pair_piece"] + offset)
        pair_feature.append(np.searchsorted(gids, d["pair_gid"]))
        offset += len(d["code"])
    pieces = _Pieces(
        np.concatenate(geoms) if geoms else np.empty(0, object),
        np.concatenate(pair_piece) if pair_piece else np.empty(0, np.int64),
        np.concatenate(pair_feature) if pair_feature else np.empty(0, np.int64),
        np.concatenate(code) if code else np.empty(0, np.int64),
    )
    rows = [table[g] for g in gids.tolist()]
    feats = _Features(
        np.empty(len(rows), object),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        [r[2] for r in rows],
        np.zeros(len(rows), bool),
        list(plan.kinds),
        list(plan.layers),
    )
    combos: dict[int, _Combo] = {}
    for r in results:
        combos.update(r["combos"])
    points = shapely.point_on_surface(pieces.geoms)
    cols = _conflict_rows(pieces, points, feats, combos, plan.catalogue, plan.crs)
    return _conflicts_frame(cols, plan.crs)


def write_part(plan: Plan, b: int, rank: np.ndarray, out: Path) -> dict[str, Any]:
    """Pass 4 task: the batch's pieces with their ids, in id order, as ``out/pieces/part-NNNNN.parquet``."""
    frame = gpd.read_parquet(plan.batch_dir(b) / "pieces.parquet")
    frame.insert(0, "piece_id", [f"P{i:06d}" for i in (rank + 1).tolist()])
    frame = frame.iloc[np.argsort(rank, kind="stable")]
    path = out / "pieces" / f"part-{b:05d}.parquet"
    frame.reset_index(drop=True)[PIECE_COLUMNS].to_parquet(path)
    return {"path": path, "count": len(frame), "by_kind": frame.groupby("kind")["area_m2"].sum().to_dict()}


# ---------------------------------------------------------------- the build


def sources_from_layers(layers: Sequence[PlanLayer], boundary: PlanLayer | None) -> list[Source]:
    """In-memory layers as build sources (the boundary, if any, last)."""
    return [Source(lay) for lay in layers] + ([Source(boundary)] if boundary is not None else [])


def _checked(
    sources: Sequence[Source], catalogue: Catalogue, precedence: Precedence, tolerance_m: float
) -> tuple[list[Source], int]:
    """Sources split into plan layers then boundary layers; in-memory ones get the merge's own checks."""
    group = [catalogue[s.layer.kind].group if s.layer.kind in catalogue else "" for s in sources]
    plan = [s for s, g in zip(sources, group, strict=True) if g != "boundary"]
    bounds = [s for s, g in zip(sources, group, strict=True) if g == "boundary"]
    if len(bounds) > 1:
        raise MergeInputError(f"two boundaries: '{bounds[0].layer.name}' and '{bounds[1].layer.name}'")
    if all(not s.parts for s in sources):
        _check_inputs(
            [s.layer for s in plan], bounds[0].layer if bounds else None, catalogue, precedence, tolerance_m
        )
    elif not plan:
        _check_inputs([], None, catalogue, precedence, tolerance_m)  # raises NoLayersError
    return plan + bounds, len(plan)


def build_partitioned(
    sources: Sequence[Source],
    out: Path | str,
    *,
    catalogue: Catalogue,
    precedence: Precedence,
    tolerance_m: float,
    version: str,
    crs: CRS | None = None,
    created_by: str = "system",
    progress: Progress | None = None,
    cell_size_m: float | None = None,
    batch_features: int = BATCH_FEATURES,
    runner: Runner | None = None,
    keep_work: bool = False,
) -> PartitionedBuild:
    """Merge ``sources`` into a draft blueprint whose pieces are written to ``out/pieces/part-*.parquet``.

    Same result as :func:`blueprint.merge.build_blueprint` on the same layers (pieces, areas, ids,
    conflicts); ``runner`` runs the batch tasks (default: two threads; see :mod:`blueprint.tasks`).
    """
    report: Progress = progress or (lambda _stage, _fraction: None)
    run = runner or local_runner()
    out = Path(out)
    report("检查输入 checking input", 0.0)
    attributed = [s.layer.name for s in sources if attributed_kind(s.layer.kind, catalogue)]
    if attributed:  # they are carried per feature and checked against the whole partition
        raise MergeInputError(
            f"layer(s) {', '.join(attributed)} carry per-feature attributes (控规地块, "
            "区域评估), which the out-of-core build does not carry yet; build in memory"
        )
    ordered, plan_count = _checked(sources, catalogue, precedence, tolerance_m)
    crs = CRS.from_user_input(crs or ordered[0].layer.frame.crs)
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    (out / "pieces").mkdir(parents=True, exist_ok=True)
    for old in (out / "pieces").glob("part-*.parquet"):
        old.unlink()
    work.mkdir(parents=True)
    is_boundary = [i >= plan_count for i in range(len(ordered))]
    n_features = sum(s.count for s in ordered)
    shape = grid_shape(_extent(ordered, is_boundary), n_features, grid_margin(tolerance_m), cell_size_m)
    nx, ny = shape[0][2], shape[1][2]
    rows_per_batch = max(1, min(ny, round(batch_features / max(n_features / ny, 1.0))))
    taken_x, taken_y, n_batches = _spill(ordered, plan_count, work, shape, rows_per_batch, report)
    xs, ys = _placed(*shape[0], taken_x), _placed(*shape[1], taken_y)
    kinds = _layer_kinds(ordered, plan_count, catalogue)
    layers = tuple(_bare(s.layer, i >= plan_count) for i, s in enumerate(ordered))
    feats0 = _Features(
        np.empty(0, object),
        np.arange(len(kinds)),
        np.empty(0, np.int64),
        [],
        np.empty(0, bool),
        kinds,
        list(layers),
    )
    ranks_by_kind = _priority(feats0, precedence)  # kind index → rank
    kind_priority = np.append(ranks_by_kind, len(precedence.order) + 1)  # index -1: the boundary
    city = _city(ordered[plan_count:])
    plan = Plan(
        work,
        xs,
        ys,
        tuple(min(ny, i * rows_per_batch) for i in range(n_batches + 1)),
        tuple(kinds),
        layers,
        kind_priority,
        tolerance_m,
        crs,
        city,
        catalogue,
        precedence,
    )
    batches = list(range(n_batches))
    first = run(
        partition_batch,
        plan,
        [(b,) for b in batches],
        lambda done: report("合并网格 merging cells", 0.05 + 0.6 * done / max(n_batches, 1)),
    )
    seams = merge_seams([r["seams"] for r in sorted(first, key=lambda r: r["batch"])])
    second = sorted(
        run(
            finish_batch_with,
            (plan, seams),
            [(b,) for b in batches],
            lambda done: report("整理图斑 assembling pieces", 0.65 + 0.2 * done / max(n_batches, 1)),
        ),
        key=lambda r: r["batch"],
    )
    report("差异图斑 finding conflicts", 0.86)
    ranks = _ranks(second)
    conflicts = _conflicts(second, plan)
    report("写出分区 writing partitions", 0.93)
    written = sorted(
        run(write_part, plan, [(b, ranks[b], out) for b in batches], lambda _d: None),
        key=lambda r: str(r["path"]),
    )
    absorbed = _absorbed(second, ranks)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    by_kind: dict[str, float] = {}
    for w in written:
        for k, v in w["by_kind"].items():
            by_kind[k] = by_kind.get(k, 0.0) + float(v)
    reference = float(shapely.area(city)) if city is not None else sum(r["reference"] for r in second)
    blueprint = Blueprint(
        version=version,
        crs=crs,
        pieces=_empty_pieces(crs),
        conflicts=conflicts,
        layers=tuple(
            LayerRef(s.layer.kind, s.layer.name, s.layer.source, s.layer.checksum, s.count) for s in ordered
        ),
        precedence=precedence.order,
        tolerance_m=tolerance_m,
        status="draft",
        created_by=created_by,
        created_at=datetime.now(UTC),
        absorbed=absorbed,
        meta={
            "cells": nx * ny,
            "stitched_pieces": sum(r["stitched"] for r in second),
            "city_area_m2": round(reference, 3),
            "boundary": ordered[plan_count].layer.name if plan_count < len(ordered) else None,
            "feature_layers": [],
            "batches": n_batches,
            "pieces_dir": str(out / "pieces"),
        },
    )
    blueprint.piece_totals = (sum(w["count"] for w in written), by_kind)
    report("完成 done", 1.0)
    return PartitionedBuild(
        blueprint, [w["path"] for w in written if w["count"]], sum(w["count"] for w in written), by_kind
    )


def _bare(layer: PlanLayer, boundary: bool) -> PlanLayer:
    """The layer's identity without its rows (what the tasks need to write sources)."""
    frame = layer.frame.iloc[0:0]
    return PlanLayer(
        kind=layer.kind,
        name=layer.name,
        source=layer.source,
        checksum=layer.checksum,
        crs_in=layer.crs_in,
        frame=frame,
        meta={"boundary": boundary},
    )


def _city(bounds: Sequence[Source]) -> Any:
    if not bounds:
        return None
    geoms = [g for s in bounds for _ids, chunk in s.chunks() for g in chunk]
    return shapely.union_all(np.asarray(geoms, dtype=object), grid_size=GRID_M)


def _absorbed(results: Sequence[dict[str, Any]], ranks: Sequence[np.ndarray]) -> tuple[dict[str, Any], ...]:
    out = []
    for r, rank in zip(results, ranks, strict=True):
        for a in r["absorbed"]:
            entry = {k: v for k, v in a.items() if k != "receiver"}
            entry["piece_id"] = f"P{int(rank[a['receiver']]) + 1:06d}"
            out.append({"piece_id": entry.pop("piece_id"), **entry})
    return tuple(sorted(out, key=lambda d: (d["piece_id"], d["y"], d["x"])))


def _empty_pieces(crs: CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in PIECE_COLUMNS[:-1]}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def iter_parts(paths: Iterable[Path]) -> Iterator[gpd.GeoDataFrame]:
    """The pieces part by part (what the store loads; one part in memory at a time)."""
    for path in paths:
        yield gpd.read_parquet(path)
