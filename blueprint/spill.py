"""blueprint.spill: out-of-core pass 0 — read the inputs once, spill each feature to its batches."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from blueprint.coverage import GRID_M
from blueprint.errors import CoverageCheckError, MergeInputError
from blueprint.merge import Progress, _check_geometries, _free_lines
from blueprint.tasks import Runner
from blueprint.workfiles import write_table
from layers.catalogue import Catalogue
from layers.crs import assert_same_crs
from layers.model import PlanLayer

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
            yield self.read_part(path)

    def read_part(self, path: Path) -> tuple[list[str], np.ndarray]:
        """One GeoParquet part's (feature ids, geometries), checked as the merge checks a layer."""
        fids, geoms = self.read_part_arrow(path)
        return [str(v) for v in fids.to_pylist()], geoms

    def read_part_arrow(self, path: Path) -> tuple[pa.Array, np.ndarray]:
        """:meth:`read_part` with the feature ids as an arrow string array (no Python string per row)."""
        try:
            frame = gpd.read_parquet(path, columns=["feature_id", "geometry"])
        except (OSError, ValueError, KeyError) as exc:
            raise MergeInputError(
                f"layer '{self.layer.name}': cannot read part {path.name} as GeoParquet "
                f"with feature_id and geometry ({exc})"
            ) from exc
        if self.layer.frame.crs is not None and frame.crs is not None:
            what = f"layer '{self.layer.name}' and its part {path.name}"
            assert_same_crs(self.layer.frame, frame, what=what)
        # parts come from files, not from a checked layer: the merge's geometry check, a part at a time
        _check_geometries(replace(self.layer, frame=frame))
        return _id_strings(frame["feature_id"]), np.asarray(frame.geometry.values, dtype=object)

    def bare(self) -> Source:
        """This source without its in-memory rows (what a spill task needs to read a part)."""
        return replace(self, layer=replace(self.layer, frame=self.layer.frame.iloc[0:0]))


@dataclass(frozen=True)
class SpillPlan:
    """What every spill task needs (small, pickled to the dask workers)."""

    work: Path
    sources: tuple[Source, ...]  # bare: rows of in-memory layers travel with their chunk's job
    steps: tuple[np.ndarray, np.ndarray]  # the first cell lines in grid steps, per axis
    band_lo: np.ndarray
    band_hi: np.ndarray
    n_batches: int


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
    sources: Sequence[Source],
    plan_count: int,
    work: Path,
    shape: Any,
    rows_per_batch: int,
    report: Progress,
    run: Runner,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Write each feature to the spill of every batch band its box reaches (grown by SPILL_MARGIN_M);
    return the vertex grid positions near the first cell lines (x, y) and the number of batches.
    Parts (or CHUNK_ROWS rows of an in-memory layer) are spilled as tasks, global ids fixed beforehand."""
    _x, (ymin, ymax, ny) = shape
    steps = [np.round(np.linspace(a, b, n + 1) / GRID_M).astype(np.int64) for a, b, n in shape]
    first_ys = np.linspace(ymin, ymax, ny + 1)
    n_batches = math.ceil(ny / rows_per_batch)
    band_lo = first_ys[np.arange(n_batches) * rows_per_batch] - SPILL_MARGIN_M
    band_hi = first_ys[np.minimum((np.arange(n_batches) + 1) * rows_per_batch, ny)] + SPILL_MARGIN_M
    bare = tuple(s.bare() for s in sources)
    spec = SpillPlan(work, bare, (steps[0], steps[1]), band_lo, band_hi, n_batches)
    jobs = sorted(_chunk_jobs(sources, plan_count), key=_job_size, reverse=True)  # largest first
    found = run(
        spill_chunk, spec, jobs, lambda done: report("分区读取 reading partitions", 0.05 * done / len(jobs))
    )
    cat = [np.unique(np.concatenate([f[axis] for f in found])) if found else np.empty(0, np.int64)
           for axis in (0, 1)]
    return cat[0], cat[1], n_batches


def _chunk_jobs(sources: Sequence[Source], plan_count: int) -> list[tuple[Any, ...]]:
    """One spill job per part or CHUNK_ROWS rows of an in-memory layer: (layer index, kind index, part
    path or None, the rows or None, first global id, chunk number), in the global feature order."""
    jobs: list[tuple[Any, ...]] = []
    gid = 0
    for li, source in enumerate(sources):
        kind = -1 if li >= plan_count else li
        if source.parts:
            for path in source.parts:
                jobs.append((li, kind, path, None, gid, len(jobs)))
                gid += pq.ParquetFile(path).metadata.num_rows
        else:
            for rows in source.chunks():
                jobs.append((li, kind, None, rows, gid, len(jobs)))
                gid += len(rows[1])
    return jobs


def _job_size(job: tuple[Any, ...]) -> int:
    """A spill job's size in bytes (a part file) or rows (an in-memory chunk): only to order the jobs."""
    _li, _kind, path, rows, _gid, _no = job
    return path.stat().st_size if path is not None else len(rows[1])


def spill_chunk(
    spec: SpillPlan, li: int, kind: int, path: Path | None, rows: Any, gid: int, chunk_no: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spill task: one chunk's features to the batches their boxes reach; its vertices near cell lines."""
    if path is not None:
        fids, geoms = spec.sources[li].read_part_arrow(path)
        # the part's own WKB goes to the spill as read: decoded above only to check and place it
        wkb = pq.read_table(path, columns=["geometry"])["geometry"].combine_chunks()
    else:
        ids, geoms = rows
        fids, wkb = _id_strings(ids), pa.array(shapely.to_wkb(geoms), pa.binary())
    grid = np.round(shapely.get_coordinates(geoms) / GRID_M).astype(np.int64)
    taken = [np.unique(_near(grid[:, axis], spec.steps[axis])) for axis in (0, 1)]
    del grid
    bounds = shapely.bounds(geoms)
    first = np.searchsorted(spec.band_hi, bounds[:, 1], side="left")  # first band whose top ≥ ymin
    last = np.searchsorted(spec.band_lo, bounds[:, 3], side="right") - 1  # last band whose bottom ≤ ymax
    ids = np.arange(gid, gid + len(geoms), dtype=np.int64)
    table = pa.table(
        {
            "gid": ids,
            "layer": np.full(len(ids), li, dtype=np.int32),
            "kind": np.full(len(ids), kind, dtype=np.int32),
            "feature_id": fids,
            "wkb": _plain_binary(wkb),
        }
    )
    for b in range(int(first.min(initial=spec.n_batches)), int(last.max(initial=-1)) + 1):
        hit = np.flatnonzero((first <= b) & (last >= b))
        if len(hit) == 0:
            continue
        (spec.work / f"batch-{b:05d}").mkdir(parents=True, exist_ok=True)
        part = table if len(hit) == len(ids) else table.take(pa.array(hit))
        write_table(part, spec.work / f"batch-{b:05d}" / f"spill-{chunk_no:05d}.arrow")
    return taken[0], taken[1]


def _plain_binary(wkb: Any) -> pa.Array:
    """A WKB column as plain ``binary`` (a registered geoarrow extension type or large_binary unwrapped)."""
    if isinstance(wkb, pa.ExtensionArray):
        wkb = wkb.storage
    return wkb if wkb.type == pa.binary() else wkb.cast(pa.binary())


def _id_strings(ids: Any) -> pa.Array:
    """Feature ids as strings (``str`` of each value), straight from arrow when they already are."""
    values = ids.array if hasattr(ids, "array") else ids
    try:
        found = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        found = None
    if found is not None and (pa.types.is_string(found.type) or pa.types.is_large_string(found.type)) \
            and found.null_count == 0:
        return found.cast(pa.string())  # one type in every spill file, so a batch's files concatenate
    return pa.array([str(v) for v in ids], pa.string())


def _layer_kinds(sources: Sequence[Source], plan_count: int, catalogue: Catalogue) -> list[str]:
    return [k for k in catalogue if any(s.layer.kind == k for s in sources[:plan_count])]

