"""viewer.archive: one MBTiles file of MVT tiles per published version, built ahead and read by z/x/y."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from layers.crs import transformer
from viewer.layer_index import CONFLICTS, LayerIndex
from viewer.tilegrid import LONLAT, WEB_MERCATOR, tile_of
from viewer.tiles import TileService

log = logging.getLogger(__name__)

RETRY_AFTER_S = 300.0  # a build that failed is not tried again for this long
DEFAULT_ZOOMS = range(6, 15)  # province (6–8) to city blocks (14); closer zooms are tiled on demand
BUILD_WORKERS = 2  # threads for the layer dissolves and the tiles (the service's box has two cores)
# bump when the tile content changes, so old archives are not served (2: markers; 3: low zooms drawn from the
# merged coverage, no per-layer simplification above them)
ARCHIVE_FORMAT = "mvt3"


def archive_path(out_dir: Path, version: str) -> Path:
    """Where the archive of ``version`` lives (one file per version)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)
    return Path(out_dir) / f"{safe}.{ARCHIVE_FORMAT}.mbtiles"


def parts_path(out_dir: Path, version: str) -> Path:
    """Where the layer indexes (dissolved parts, EPSG:3857) of ``version`` are kept beside its archive."""
    return archive_path(out_dir, version).with_suffix(".parts.parquet")


def save_parts(indexes: dict[str, LayerIndex], path: Path) -> None:
    """Write every layer's parts and properties as GeoParquet (atomically): a restarted server reads them in
    seconds instead of dissolving every kind again before it can tile street zooms."""
    # an empty layer is one row without geometry, so that a reader knows it is empty rather than missing
    frames = []
    for name, ix in indexes.items():
        props = [json.dumps(p, ensure_ascii=False) for p in ix.props] or ["null"]
        geoms = gpd.GeoSeries(ix.geoms if len(ix.geoms) else [None], crs=WEB_MERCATOR)
        frames.append(gpd.GeoDataFrame({"layer": name, "props": props}, geometry=geoms))
    frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=WEB_MERCATOR)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    frame.to_parquet(tmp, compression="zstd")
    os.replace(tmp, path)


def load_parts(path: Path) -> dict[str, LayerIndex]:
    """The layer indexes :func:`save_parts` wrote."""
    frame = gpd.read_parquet(path)
    out = {}
    for name, rows in frame.groupby("layer", sort=False):
        rows = rows[rows.geometry.notna()]
        out[str(name)] = LayerIndex(rows.geometry.to_numpy(), [json.loads(p) for p in rows["props"]],
                                    markers=name == CONFLICTS, exact=name != CONFLICTS)  # low zooms: "kind@z"
    return out


def city_tiles(bounds_4326: tuple[float, float, float, float],
               zooms: Iterable[int]) -> Iterator[tuple[int, int, int]]:
    """Every XYZ tile (z, x, y) that meets the lon/lat box, zoom by zoom."""
    west, south, east, north = bounds_4326
    for z in zooms:
        x0, y0 = tile_of(west, north, z)
        x1, y1 = tile_of(east, south, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                yield z, x, y


def _bounds_4326(service: TileService, version: str) -> tuple[float, float, float, float]:
    pieces = service._frame(version, "pieces", None)
    if len(pieces) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    to_84 = transformer(CRS.from_user_input(pieces.crs), LONLAT)
    w, s, e, n = to_84.transform_bounds(*pieces.total_bounds)
    return float(w), float(s), float(e), float(n)


def _create(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE metadata (name TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB,
                            PRIMARY KEY (zoom_level, tile_column, tile_row));
    """)
    return db


def build_version_tiles(source: Any, version: str, out_dir: Path, zooms: Iterable[int] = DEFAULT_ZOOMS, *,
                        groups: dict[str, str] | None = None, service: TileService | None = None) -> Path:
    """Build the MBTiles archive of ``version``'s MVT tiles (gzip, every layer per tile) and return its path.

    Pure apart from the file it writes: reads ``source`` (a :class:`viewer.source.ViewerSource`),
    writes ``<out_dir>/<version>.mvt1.mbtiles`` atomically (a temporary file renamed into place), so a
    reader sees either no archive or a whole one. Empty tiles are not stored. ``groups`` maps catalogue
    kinds to groups (default: the built-in catalogue); ``service`` lets a caller share its indexes.
    """
    if service is None:
        if groups is None:
            from layers.catalogue import load_catalogue

            groups = {k.key: k.group for k in load_catalogue().values()}
        service = TileService(source, groups, tile_cache=1)
    zooms = sorted(set(zooms))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = archive_path(out_dir, version)
    tmp = final.with_name(f"{final.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    bounds = _bounds_4326(service, version)
    indexes = service.indexes(version, workers=BUILD_WORKERS)
    parts = parts_path(out_dir, version)
    # before the archive appears: a server that sees it finds the parts too (with the low zooms: zooms below
    # the archive's are tiled on demand from them)
    save_parts({**indexes, **service.saved_low_zooms(version)}, parts)
    db = _create(tmp)
    stored = 0
    try:
        with db, ThreadPoolExecutor(max_workers=BUILD_WORKERS, thread_name_prefix="tiles") as pool:
            for z in zooms:
                # each layer simplified for this zoom once (in parallel), then its tiles two at a time:
                # clipping, validity and most of the encoding run in GEOS and numpy, without the GIL
                list(pool.map(lambda index, z=z: index.at_zoom(z), indexes.values()))
                cells = list(city_tiles(bounds, [z]))
                bodies = pool.map(lambda cell: service._build_mvt(version, *cell), cells)
                for (_, x, y), body in zip(cells, bodies, strict=True):
                    if body:
                        db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, body))
                        stored += 1
            meta = {"name": f"一张蓝图 {version}", "format": "pbf", "type": "overlay", "version": "1",
                    "minzoom": str(zooms[0]), "maxzoom": str(zooms[-1]), "zooms": ",".join(map(str, zooms)),
                    "bounds": ",".join(f"{v:.6f}" for v in bounds),
                    "json": json.dumps({"vector_layers": [{"id": n} for n in service.layer_names()]}),
                    "blueprint_version": version, "tile_format": ARCHIVE_FORMAT}
            db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
    finally:
        db.close()
    os.replace(tmp, final)
    log.info("tiles of %s: %d tiles, %d bytes, %.1f s", version, stored, final.stat().st_size,
             time.monotonic() - started)
    return final


class TileArchive:
    """Reads one version's archive: ``get(z, x, y)`` → bytes (b"" = empty tile), None at a zoom not built."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        meta = dict(self._db().execute("SELECT name, value FROM metadata").fetchall())
        self.minzoom, self.maxzoom = int(meta["minzoom"]), int(meta["maxzoom"])
        self.zooms = {int(z) for z in meta["zooms"].split(",")}

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:  # one read-only connection per thread
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            self._local.db = db
        return db

    def get(self, z: int, x: int, y: int) -> bytes | None:
        if z not in self.zooms:
            return None
        row = self._db().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, (1 << z) - 1 - y)).fetchone()
        return bytes(row[0]) if row else b""


class Archives:
    """Archives of published versions under ``out_dir``: opened when present, else built once in a
    background thread (the lead's publish job will call :func:`build_version_tiles` instead)."""

    def __init__(self, out_dir: Path | None, source: Any, service: TileService,
                 zooms: Iterable[int] = DEFAULT_ZOOMS) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.source = source
        self.service = service
        self.zooms = list(zooms)
        self._open: dict[str, TileArchive] = {}
        self._building: set[str] = set()
        self._failed: dict[str, float] = {}
        self._one_at_a_time = threading.Lock()  # several versions asked for at once: build them in turn
        self._lock = threading.Lock()

    def get(self, version: str) -> TileArchive | None:
        """The archive of a published ``version``, or None while there is none (tiles then come on demand)."""
        if self.out_dir is None or self.service.status(version) != "published":
            return None
        with self._lock:
            if version in self._open:
                return self._open[version]
            path = archive_path(self.out_dir, version)
            if path.exists():
                try:
                    self._open[version] = TileArchive(path)
                    # street zooms are tiled on demand from the layer indexes: build them now, not on
                    # the first fly-to (the archive may come from another process, e.g. the publish job)
                    threading.Thread(target=self._warm, args=(version,), daemon=True,
                                     name=f"tile-indexes-{version}").start()
                    return self._open[version]
                except sqlite3.Error:
                    log.exception("unreadable tile archive %s: rebuilding", path)
            failed = self._failed.get(version, -RETRY_AFTER_S)
            if version not in self._building and time.monotonic() - failed > RETRY_AFTER_S:
                self._building.add(version)
                threading.Thread(target=self._build, args=(version,), daemon=True,
                                 name=f"tiles-{version}").start()
        return None

    def tile(self, version: str, z: int, x: int, y: int) -> bytes | None:
        """Tile z/x/y from the archive of ``version``; None when it must be tiled on demand (no archive
        yet, a zoom it does not hold, or an unreadable file — logged, never an error for the map)."""
        archive = self.get(version)
        if archive is None:
            return None
        try:
            return archive.get(z, x, y)
        except sqlite3.Error:
            log.exception("tile %s/%s/%s of %s unreadable in %s", z, x, y, version, archive.path)
            return None

    def _warm(self, version: str) -> None:
        try:
            assert self.out_dir is not None
            parts = parts_path(self.out_dir, version)
            if parts.exists():  # saved by the build: seconds to read, where dissolving takes minutes at 10⁶
                try:
                    self.service.preload(version, load_parts(parts))
                except Exception:
                    log.exception("unreadable layer parts %s: dissolving again", parts)
            with self._one_at_a_time:
                self.service.indexes(version, workers=BUILD_WORKERS)
        except Exception:  # only a head start: a failure here shows again, and is reported, on demand
            log.exception("warming the tile indexes of %s failed", version)

    def _build(self, version: str) -> None:
        try:
            assert self.out_dir is not None
            with self._one_at_a_time:
                build_version_tiles(self.source, version, self.out_dir, self.zooms, service=self.service)
        except Exception:  # a failed build leaves tiles on demand; tried again after RETRY_AFTER_S
            log.exception("building the tiles of %s failed", version)
            with self._lock:
                self._failed[version] = time.monotonic()
        finally:
            with self._lock:
                self._building.discard(version)

