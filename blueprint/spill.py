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

