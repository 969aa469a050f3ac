"""checks.distributed: the batch screening on dask-geopandas, locally or on any dask scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from checks.batch import empty_rows, order_rows, screen_rows
from checks.batch_pieces import PieceFile, screener_for, visible_to_workers
from checks.engine import Screener
from checks.errors import CheckError, NoParcelsError


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2) -> Iterator[Any]:
    """A client on ``scheduler`` (address), or on a fresh LocalCluster of worker processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except OSError as exc:
            raise CheckError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    # processes, not threads: shapely/GEOS work holds the GIL for part of every call
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _screen_partition(part: gpd.GeoDataFrame, screener: Screener, project_type: str) -> gpd.GeoDataFrame:
    """Runs on a worker: the same vectorised screening as the in-process batch (checks.batch_fast; its
    per-blueprint ring arrays are built once per worker process, on the first partition)."""
    ptype = screener.rules.require_project_type(project_type)
    if len(part) == 0:
        return empty_rows(screener.crs)
    return screen_rows(screener, part, ptype)


def _screen_partition_from(part: gpd.GeoDataFrame, source: PieceFile, project_type: str) -> gpd.GeoDataFrame:
    """``_screen_partition`` on a worker that reads the version's pieces itself (checks.batch_pieces)."""
    return _screen_partition(part, screener_for(source), project_type)


def hilbert_order(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Row order along a Hilbert curve over the parcels' extent; empty geometries go first (they are
    reported as errors, and dask-geopandas' spatial_shuffle cannot place them)."""
    geoms = frame.geometry
    values = np.asarray(geoms.values, dtype=object)
    present = ~(shapely.is_missing(values) | shapely.is_empty(values))
    key = np.zeros(len(frame), dtype=np.int64)
    if present.any():
        key[present] = geoms[present].hilbert_distance(total_bounds=geoms[present].total_bounds).to_numpy()
    return np.argsort(key, kind="stable")


def screen_distributed(parcels_gdf: gpd.GeoDataFrame, screener: Screener, project_type: str, *,
                       scheduler: str | None = None, partitions: int | None = None,
                       n_workers: int = 2, client: Any = None,
                       pieces: PieceFile | None = None) -> gpd.GeoDataFrame:
    """Screen ``parcels_gdf`` on dask-geopandas, spatially partitioned along a Hilbert curve so each
    partition queries a compact part of the STRtree.

    Runs on ``client``, else on the dask.distributed ``scheduler`` address, else on a fresh LocalCluster
    of ``n_workers`` processes. Workers that see ``pieces`` (the version's pieces in the data dir) build
    their screener from that file; otherwise the screener is broadcast once per worker (its tree is
    rebuilt there on unpickling). Rows come back in the in-process order (``order_rows``), so the table equals
    ``screen_batch`` on the same input exactly.
    """
    import dask_geopandas

    screener.rules.require_project_type(project_type)
    if len(parcels_gdf) == 0:
        raise NoParcelsError("no parcels to screen")
    work = screener.validated(parcels_gdf, "batch")
    nparts = max(1, min(partitions or 4 * n_workers, len(work)))
    ordered = work.iloc[hilbert_order(work)]

    def run(active: Any) -> gpd.GeoDataFrame:
        # contiguous runs of the Hilbert order are the spatial partitions (no shuffle needed: the
        # parcels are in this process already); sort=False keeps that order
        ddf = dask_geopandas.from_geopandas(ordered, npartitions=nparts, sort=False)
        if pieces is not None and visible_to_workers(active, pieces):
            task: Any = _screen_partition_from
            shared = active.scatter(pieces, broadcast=True)
        else:
            task, shared = _screen_partition, active.scatter(screener, broadcast=True)
        rows = ddf.map_partitions(task, shared, project_type, meta=empty_rows(screener.crs))
        return active.compute(rows).result()

    if client is not None:
        result = run(client)
    else:
        with dask_client(scheduler, n_workers) as fresh:
            result = run(fresh)
    return order_rows(gpd.GeoDataFrame(result, crs=screener.crs))
