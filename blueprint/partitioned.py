"""blueprint.partitioned: the merge out of core — grid cells in batches read from and written to GeoParquet.

The same grid, cells, seam stitching, precedence and conflicts as :func:`blueprint.merge.build_blueprint`
(and the same result: pieces, areas, ids and conflicts), but no step holds the whole province:

0. one pass over the input (in-memory layers or GeoParquet parts) spills each feature to the batches
   (bands of grid rows) its box reaches, and keeps the vertex coordinates near the cell lines
   (:mod:`blueprint.spill`);
1. per batch (a task): partition its cells, keep the raw faces on disk, report the vertices on cell lines;
2. per batch (a task): stitch the seams with every batch's seam vertices, verify the batch's coverage,
   compute attributes and areas, write the pieces, sort them, dissolve the conflicts inside the batch
   (:mod:`blueprint.batches`, :mod:`blueprint.batch_conflicts`);
3. in the driver: piece ids from each batch's order and counts per kind; the conflicts touching a line
   between two batches joined;
4. per batch (a task): write ``<out>/pieces/part-NNNNN.parquet`` with the piece ids.

Tasks run on threads in process or as dask tasks (:mod:`blueprint.tasks`); memory is bounded by a batch
plus the conflict table.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from blueprint.batch_conflicts import join_conflicts
from blueprint.batches import Plan, finish_batch_with, partition_batch, write_part
from blueprint.coverage import GRID_M, merge_seams
from blueprint.errors import MergeInputError
from blueprint.merge import (
    PIECE_COLUMNS,
    Progress,
    _check_inputs,
    _Features,
    _priority,
    attributed_kind,
    grid_margin,
    grid_shape,
)
from blueprint.model import Blueprint, LayerRef
from blueprint.precedence import Precedence
from blueprint.spill import Source, _extent, _layer_kinds, _placed, _spill
from blueprint.tasks import Runner, local_runner
from layers.catalogue import Catalogue
from layers.model import PlanLayer

__all__ = ["BATCH_FEATURES", "PartitionedBuild", "Source", "build_partitioned", "iter_parts",
           "sources_from_layers"]

BATCH_FEATURES = 120_000  # features per batch of grid rows: a batch's arrays and pieces stay < ~1 GB


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



# ---------------------------------------------------------------- piece ids


def _ranks(results: Sequence[dict[str, Any]], plan: Plan) -> list[np.ndarray]:
    """Per batch: each piece's position in the blueprint's piece order (see merge._piece_order).

    Batches are bands of grid rows and pieces sort by kind, then y: a kind's pieces of batch b come
    before those of batch b + 1, unless rounding to the millimetre makes their keys interleave at the
    line between them — then the keys are read back and sorted as one."""
    counts = np.array([r["counts"] for r in results]).reshape(len(results), -1)
    for k in range(counts.shape[1]):
        ends = [r["ends"][k] for r in results if k in r["ends"]]
        if any(a[1] > b[0] for a, b in pairwise(ends)):
            return _ranks_sorted(plan, len(results))
    kind_start = np.concatenate([[0], np.cumsum(counts.sum(axis=0))])[:-1]
    before = np.cumsum(counts, axis=0) - counts  # pieces of each kind in the earlier batches
    return [kind_start[r["kind"]] + before[i][r["kind"]] + r["position"] for i, r in enumerate(results)]


def _ranks_sorted(plan: Plan, n_batches: int) -> list[np.ndarray]:
    keys = [np.load(plan.batch_dir(b) / "keys.npz") for b in range(n_batches)]
    cat = {c: np.concatenate([k[c] for k in keys]) for c in ("kind", "x", "y", "area")}
    order = np.lexsort((cat["area"], cat["x"], cat["y"], cat["kind"]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    sizes = np.cumsum([0] + [len(k["kind"]) for k in keys])
    return [rank[sizes[i] : sizes[i + 1]] for i in range(n_batches)]


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
    taken_x, taken_y, n_batches = _spill(ordered, plan_count, work, shape, rows_per_batch, report, run)
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
    batches = _largest_first(plan, n_batches)  # the last task on a thread is a small one: less idle tail
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
    ranks = _ranks(second, plan)
    # the driver joins the conflicts while the tasks write the parts (else a core idles through either)
    with ThreadPoolExecutor(max_workers=1) as driver:
        joined = driver.submit(join_conflicts, [r["conflicts"] for r in second], catalogue, crs)
        report("写出分区 writing partitions", 0.93)
        written = sorted(
            run(write_part, plan, [(b, ranks[b], out) for b in batches], lambda _d: None),
            key=lambda r: str(r["path"]),
        )
        conflicts = joined.result()
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
    for w in written:
        for k, v in w["ellipsoidal_by_kind"].items():
            blueprint.ellipsoidal_totals[k] = blueprint.ellipsoidal_totals.get(k, 0.0) + float(v)
    report("完成 done", 1.0)
    return PartitionedBuild(
        blueprint, [w["path"] for w in written if w["count"]], sum(w["count"] for w in written), by_kind
    )


def _largest_first(plan: Plan, n_batches: int) -> list[int]:
    """Batch numbers by the size of their spill, largest first (the results are put back in order)."""
    size = [sum(f.stat().st_size for f in plan.batch_dir(b).glob("spill-*")) for b in range(n_batches)]
    return sorted(range(n_batches), key=lambda b: (-size[b], b))


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
