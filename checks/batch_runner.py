"""checks.batch_runner: a batch run in partitions, in process or on dask, resumable (checks.batch_store).

Partitions are contiguous runs of the parcels along a Hilbert curve over their extent (so each one queries
a compact part of the blueprint's STRtree), ``partition_size`` parcels each. The order and the split depend
on the input alone, so a rerun of the same input cuts the same partitions and can skip the finished ones.
Each partition is screened by ``checks.batch.screen_rows`` (in chunks of ``checks.batch.CHUNK``), exactly
as ``screen_batch`` does, so the concatenated, sorted parts equal the single-file table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from checks.batch import CHUNK, screen_rows
from checks.batch_pieces import PieceFile, screener_for, visible_to_workers
from checks.batch_store import BatchDir, RunKey
from checks.distributed import hilbert_order
from checks.engine import Screener

PARTITION_SIZE = 20_000  # parcels per partition: ≈10 s of work at 10⁶ pieces, a few MB of parquet
# (partitions done, partitions in all, parcels done) after each partition
PartProgress = Callable[[int, int, int], None]


def split(frame: gpd.GeoDataFrame, size: int) -> list[NDArray[np.int64]]:
    """Row positions of each partition: the Hilbert order cut every ``size`` parcels."""
    order = hilbert_order(frame)
    return [order[start:start + size] for start in range(0, len(order), size)]


def run_key(screener: Screener, project_type: str, checksum: str, options: str, size: int,
            parcels: int, *, bounded: bool = False) -> RunKey:
    return RunKey(input_checksum=checksum, input_options=options, blueprint_version=screener.version,
                  rules_version=screener.rules.meta.version, rules_digest=screener._rules_digest,
                  project_type=project_type, partition_size=size, parcels=parcels,
                  pieces="bounded" if bounded else "whole")


def screen_part(screener: Screener, part: gpd.GeoDataFrame, project_type: str,
                chunk: int = CHUNK) -> tuple[gpd.GeoDataFrame, float]:
    """One partition's rows (validated parcels) and the seconds it took; runs in process or on a worker."""
    started = time.perf_counter()
    ptype = screener.rules.require_project_type(project_type)
    tables = [screen_rows(screener, part.iloc[s:s + chunk], ptype) for s in range(0, len(part), chunk)]
    table = gpd.GeoDataFrame(pd.concat(tables, ignore_index=True), crs=screener.crs)
    return table, time.perf_counter() - started


def screen_part_from(source: PieceFile, part: gpd.GeoDataFrame, project_type: str,
                     chunk: int = CHUNK) -> tuple[gpd.GeoDataFrame, float]:
    """``screen_part`` on a worker that reads the pieces itself (checks.batch_pieces)."""
    return screen_part(screener_for(source), part, project_type, chunk)


def run_batch(work: gpd.GeoDataFrame, screener: Screener, project_type: str, batch: BatchDir,
              parts: list[NDArray[np.int64]], *, client: Any = None, progress: PartProgress | None = None,
              pause: float = 0.0, pieces: PieceFile | None = None,
              part_screener: Callable[[gpd.GeoDataFrame], Screener] | None = None) -> None:
    """Screen the partitions ``batch`` has not finished (``work``: ``Screener.validated`` parcels); each
    finished partition is written and recorded before the next result is taken. On dask, workers that
    see ``pieces`` (the version's pieces written in the data dir) read them themselves; otherwise the
    screener is sent to each worker. ``pause`` (seconds after each partition) exists for the resume
    tests only. ``part_screener`` (in process only) gives each partition its own Screener, made from
    the pieces near it (checks.batch_regions), instead of ``screener``."""
    total = len(parts)
    done = total - len(batch.pending())
    parcels = batch.finished_parcels()

    def finished(index: int, table: gpd.GeoDataFrame, seconds: float) -> None:
        nonlocal done, parcels
        batch.write_part(index, table, seconds)
        done, parcels = done + 1, parcels + len(parts[index])
        if progress is not None:
            progress(done, total, parcels)
        if pause:
            time.sleep(pause)

    if client is None:
        for index in batch.pending():
            part = work.iloc[parts[index]]
            own = screener if part_screener is None else part_screener(part)
            finished(index, *screen_part(own, part, project_type))
            del own  # a bounded run frees this partition's pieces before loading the next ones
    elif part_screener is not None:
        raise ValueError("a Screener per partition runs in process only")
    else:
        _run_on_dask(client, work, screener, project_type, batch.pending(), parts, finished, pieces)


def _run_on_dask(client: Any, work: gpd.GeoDataFrame, screener: Screener, project_type: str,
                 pending: list[int], parts: list[NDArray[np.int64]],
                 finished: Callable[[int, gpd.GeoDataFrame, float], None], pieces: PieceFile | None) -> None:
    """Partitions as dask tasks, a bounded number in flight (the driver holds at most that many inputs and
    results); results come back to the driver, which writes them, so workers need no shared output disk."""
    from dask.distributed import as_completed

    task: Callable[..., tuple[gpd.GeoDataFrame, float]]
    if pieces is not None and visible_to_workers(client, pieces):
        task, shared = screen_part_from, client.scatter(pieces, broadcast=True)
    else:  # workers without the data dir: the screener goes to each worker, once
        task, shared = screen_part, client.scatter(screener, broadcast=True)
    window = 2 * max(1, len(client.scheduler_info().get("workers", {})) or 1)
    todo = iter(pending)
    index_of: dict[Any, int] = {}

    def submit(index: int) -> Any:
        future = client.submit(task, shared, work.iloc[parts[index]], project_type, pure=False)
        index_of[future] = index
        return future

    queue = as_completed([submit(i) for i in islice(todo, window)])
    for future in queue:
        table, seconds = future.result()
        finished(index_of.pop(future), table, seconds)
        following = next(todo, None)
        if following is not None:
            queue.add(submit(following))
