"""checks.batch_pieces: a version's pieces as parquet in the data dir, so dask workers load them themselves.

Sending the Screener to every worker pickles 10⁶ pieces through the scheduler (and the driver's memory);
instead the driver writes the pieces once per version (``DIR/pieces.parquet``: id, kinds, sources, WKB
geometry, with the blueprint's version, CRS and layer kinds in the file's metadata) beside the feature sets
of checks.batch_sources, and each task carries a small ``PieceFile``: where the file is, its fingerprint
and the policy (rules, catalogue, tolerances). A worker builds its Screener from the file on its first
task and keeps it for the following ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from checks.batch_sources import fingerprint
from checks.engine import Screener
from checks.rules import Rules

PIECES = "pieces.parquet"
FORMAT = "one-blueprint/batch-pieces/1"
COLUMNS = ["piece_id", "kinds", "sources", "geometry"]


@dataclass(frozen=True, eq=False)
class PieceFile:
    """What a worker needs to make the driver's Screener: the pieces' file and the policy."""

    directory: str
    fingerprint: str
    token: str  # the pieces' fingerprint and a digest of the policy: a worker's cache key
    rules: Rules
    catalogue: Any
    tolerance_m2: float
    tolerance_ratio: float
    compatibility: Any = None


def write(blueprint: Any, directory: Path) -> str:
    """Write ``blueprint``'s pieces to ``directory``/pieces.parquet unless that file holds them already;
    returns their fingerprint (sha256 of the piece ids)."""
    import pyarrow.parquet as pq

    ids = blueprint.pieces["piece_id"].astype(str).to_numpy(dtype=object)
    print_ = fingerprint(ids)
    path = directory / PIECES
    try:
        if (pq.read_schema(path).metadata or {}).get(b"fingerprint") == print_.encode():
            return print_
    except (OSError, ValueError):
        pass
    directory.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa

    pieces = blueprint.pieces
    columns = {name: pa.array([None if v is None or v != v else str(v)  # NaN: a missing value
                               for v in pieces[name].to_numpy(dtype=object).tolist()], pa.string())
               for name in COLUMNS[:-1]}
    wkb = shapely.to_wkb(np.asarray(pieces.geometry.values))
    table = pa.table(columns | {"geometry": pa.array(wkb, pa.binary())})
    meta = {
        b"format": FORMAT.encode(), b"fingerprint": print_.encode(), b"version": blueprint.version.encode(),
        b"crs": blueprint.crs.to_wkt().encode(), b"layer_kinds": json.dumps(
            [ref.kind for ref in blueprint.layers]).encode()}
    handle, temp = tempfile.mkstemp(prefix=f".{PIECES}.", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        pq.write_table(table.replace_schema_metadata(meta), temp)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    return print_


def read_blueprint(directory: Path, expect: str) -> Any:
    """The pieces of ``directory`` as a published Blueprint carrying what the batch reads (pieces,
    version, CRS, layer kinds); refused when they are not the pieces the driver screens with."""
    import pyarrow.parquet as pq

    from blueprint.model import Blueprint, LayerRef
    from checks.errors import CheckError

    path = directory / PIECES
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError) as exc:
        raise CheckError(f"{path}: this dask worker cannot read the blueprint pieces ({exc}); give the "
                         "workers the data directory (BLUEPRINT_DATA_DIR) on shared storage") from exc
    if meta.get(b"fingerprint") != expect.encode():
        raise CheckError(f"{path}: holds other pieces than the driver's blueprint (rewritten meanwhile?)")
    table = pq.read_table(path)
    crs = meta[b"crs"].decode()
    pieces = gpd.GeoDataFrame({name: table.column(name).to_numpy(zero_copy_only=False)
                               for name in COLUMNS[:-1]},
                              geometry=shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)),
                              crs=crs)
    layers = tuple(LayerRef(kind, "", "", "", 0) for kind in json.loads(meta[b"layer_kinds"]))
    empty = gpd.GeoDataFrame({"conflict_id": []}, geometry=[], crs=pieces.crs)
    return Blueprint(version=meta[b"version"].decode(), crs=CRS.from_wkt(crs), pieces=pieces, conflicts=empty,
                     layers=layers, precedence=(), tolerance_m=0.0, status="published")


_cache: dict[str, Screener] = {}
_lock = threading.Lock()


def screener_for(source: PieceFile) -> Screener:
    """This process's Screener of ``source``, built on first use (one kept: a worker serves one run)."""
    from checks.batch_fast import feature_sets

    with _lock:
        found = _cache.get(source.token)
        if found is None:
            blueprint = read_blueprint(Path(source.directory), source.fingerprint)
            found = Screener(blueprint, source.rules, source.catalogue, tolerance_m2=source.tolerance_m2,
                             tolerance_ratio=source.tolerance_ratio, compatibility=source.compatibility)
            _cache.clear()
            _cache[source.token] = found
    feature_sets(found, Path(source.directory))  # saved by the driver: read, not parsed
    return found


def piece_file(screener: Screener, blueprint: Any, directory: Path, *,
               compatibility: Any = None) -> PieceFile:
    """Write the pieces (once per version) and describe them for the workers."""
    print_ = write(blueprint, directory)
    policy = (screener.rules, screener.catalogue, screener.tolerance_m2, screener.tolerance_ratio,
              compatibility)
    token = hashlib.sha256(print_.encode() + pickle.dumps(policy)).hexdigest()
    return PieceFile(str(directory.resolve()), print_, token, *policy)


def visible_to_workers(client: Any, source: PieceFile) -> bool:
    """Whether every dask worker can open the pieces' file (a remote cluster may not share the disk)."""
    path = str(Path(source.directory) / PIECES)
    try:
        seen = client.run(os.path.isfile, path)
    except Exception:  # a worker that cannot answer cannot read the file either
        return False
    return bool(seen) and all(seen.values())
