"""viewer.basemap: the optional basemap under the map: a local MBTiles/PMTiles file or a tile URL template."""

from __future__ import annotations

import functools
import hashlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from layers.errors import OneBlueprintError

SETTING = "BLUEPRINT_BASEMAP"
FILE_KINDS = {".mbtiles": "mbtiles", ".pmtiles": "pmtiles"}
# what a tile is, from the file's metadata (MBTiles "format", PMTiles header tile_type) → HTTP type
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp",
               "pbf": "application/vnd.mapbox-vector-tile"}
FORMAT_ALIASES = {"jpeg": "jpg", "mvt": "pbf", "png": "png", "jpg": "jpg", "webp": "webp", "pbf": "pbf"}
# 天地图 serves from t0…t7; other {s} templates use Leaflet's usual a, b, c
TIANDITU_SUBDOMAINS = "01234567"
LOCAL_URL = "/viewer/basemap/{z}/{x}/{y}"  # where viewer.routes serves a local file's tiles


class BasemapError(OneBlueprintError):
    """``BLUEPRINT_BASEMAP`` names no usable basemap (a start-up error, never a request's)."""

    code = "invalid_basemap"


@dataclass(frozen=True)
class Basemap:
    """What the page needs to draw the basemap, and (for a local file) the reader serving its tiles."""

    kind: Literal["url", "mbtiles", "pmtiles"]
    location: str  # the URL template, or the file's path
    tile_format: str  # png, jpg, webp or pbf (vector); "" for a URL template (raster assumed)
    minzoom: int = 0
    maxzoom: int = 20
    attribution: str = "底图 Basemap"
    revision: str = ""  # changes when the file changes: part of the tile URL, so tiles can be immutable
    reader: Any = None  # MBTilesReader | PMTilesReader for a local file

    @property
    def vector(self) -> bool:
        return self.tile_format == "pbf"

    def page_config(self, local_url: str) -> dict[str, Any]:
        """The page script's ``basemap`` entry: where the tiles are and how to draw them."""
        if self.kind == "url":
            host = urlsplit(self.location).hostname or ""
            return {"url": self.location, "vector": False, "minZoom": 0, "maxNativeZoom": 20,
                    "subdomains": TIANDITU_SUBDOMAINS if "tianditu" in host else "abc",
                    "attribution": self.attribution}
        return {"url": f"{local_url}?v={self.revision}", "vector": self.vector, "minZoom": self.minzoom,
                "maxNativeZoom": self.maxzoom, "subdomains": "", "attribution": self.attribution}

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The stored bytes of XYZ tile z/x/y of a local file (None: no such tile)."""
        return None if self.reader is None else self.reader.get(z, x, y)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.tile_format, "application/octet-stream")


def basemap_config(basemap: Basemap | None) -> dict[str, Any] | None:
    """The page script's ``basemap`` entry (None: no basemap, nothing leaves the service)."""
    return None if basemap is None else basemap.page_config(LOCAL_URL)


def open_basemap(value: str | None) -> Basemap | None:
    """The basemap ``BLUEPRINT_BASEMAP`` names: None when unset (the default: nothing leaves the service).

    A value with ``://`` is a tile URL template and must hold ``{z}``, ``{x}`` and ``{y}``; anything
    else is a local ``.mbtiles`` or ``.pmtiles`` file, opened now so a wrong path stops the start-up
    with a message naming the setting and the path.
    """
    text = (value or "").strip()
    if not text:
        return None
    if "://" in text:
        return _url_template(text)
    path = Path(text).expanduser()
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise BasemapError(
            f"{SETTING}={text}: 底图文件须为 .mbtiles 或 .pmtiles，或为瓦片地址模板 / the basemap must be an "
            f".mbtiles or .pmtiles file or an http(s)://…/{{z}}/{{x}}/{{y}} template, "
            f"not '{path.suffix or path.name}'")
    if not path.is_file():
        raise BasemapError(f"{SETTING}: 底图文件不存在 / the basemap file {path} does not exist "
                           "(check the path on this server, or unset the setting for no basemap)")
    try:
        reader = MBTilesReader(path) if kind == "mbtiles" else PMTilesReader(path)
    except (sqlite3.Error, OSError, ValueError, KeyError) as exc:
        raise BasemapError(f"{SETTING}: 底图文件无法读取 / the basemap file {path} cannot be read as "
                           f"{kind.upper()}: {exc}") from exc
    stat = path.stat()
    revision = hashlib.blake2b(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode(),
                               digest_size=6).hexdigest()
    return Basemap(kind=kind, location=str(path), tile_format=reader.tile_format, minzoom=reader.minzoom,
                   maxzoom=reader.maxzoom, attribution=reader.attribution, revision=revision, reader=reader)


def _url_template(text: str) -> Basemap:
    parts = urlsplit(text)
    missing = [k for k in ("{z}", "{x}", "{y}") if k not in text]
    if parts.scheme not in ("http", "https") or not parts.hostname or missing:
        raise BasemapError(
            f"{SETTING}={text}: 瓦片地址模板须为 http(s) 地址并含 {{z}} {{x}} {{y}} / a tile URL template "
            f"must be http(s) and hold {{z}}, {{x}} and {{y}}"
            + (f" (missing {' '.join(missing)})" if missing else ""))
    return Basemap(kind="url", location=text, tile_format="")


def _tile_format(value: str) -> str:
    fmt = FORMAT_ALIASES.get(value.strip().lower())
    if fmt is None:
        raise ValueError(f"tiles of format '{value}' cannot be drawn (png, jpg, webp or pbf vector tiles)")
    return fmt


class MBTilesReader:
    """Tiles of an MBTiles file (SQLite, TMS rows: y counted from the south), read-only, one connection
    per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        meta = dict(self._db().execute("SELECT name, value FROM metadata").fetchall())
        fmt = meta.get("format") or _sniff(self._first_tile())
        self.tile_format = _tile_format(fmt)
        zooms = self._db().execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        if zooms[0] is None:
            raise ValueError("it holds no tile")
        self.minzoom, self.maxzoom = int(zooms[0]), int(zooms[1])
        self.attribution = str(meta.get("attribution") or meta.get("name") or "底图 Basemap")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            self._local.db = db
        return db

    def _first_tile(self) -> bytes:
        row = self._db().execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
        return bytes(row[0]) if row else b""

    def get(self, z: int, x: int, y: int) -> bytes | None:
        row = self._db().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, (1 << z) - 1 - y)).fetchone()
        return bytes(row[0]) if row else None


class PMTilesReader:
    """Tiles of a PMTiles v3 file through the ``pmtiles`` package's reader (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        import mmap

        from pmtiles.reader import Reader
        from pmtiles.tile import TileType

        self.path = path
        with open(path, "rb") as f:
            # the mapping outlives the file object; slices of it are safe to read from many threads
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._reader = Reader(self._bytes)
        self._header = header = self._reader.header()
        names = {TileType.MVT: "pbf", TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp"}
        if header["tile_type"] not in names:
            raise ValueError(f"tiles of type {header['tile_type']} cannot be drawn")
        self.tile_format = names[header["tile_type"]]
        self.minzoom, self.maxzoom = int(header["min_zoom"]), int(header["max_zoom"])
        meta = self._reader.metadata() or {}
        self.attribution = str(meta.get("attribution") or meta.get("name") or "底图 Basemap")

    def _bytes(self, offset: int, length: int) -> bytes:
        return self._map[offset:offset + length]

    @functools.lru_cache(maxsize=64)  # noqa: B019 — one reader per process, kept for its lifetime
    def _directory(self, offset: int, length: int) -> list[Any]:
        from pmtiles.tile import deserialize_directory

        return deserialize_directory(self._bytes(offset, length))

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """As ``pmtiles.reader.Reader.get``, with the header read once and directories cached (the
        reader decompresses the root directory again for every tile)."""
        from pmtiles.tile import find_tile, zxy_to_tileid

        header, tile_id = self._header, zxy_to_tileid(z, x, y)
        offset, length = header["root_offset"], header["root_length"]
        for _ in range(4):  # the format's maximum directory depth
            entry = find_tile(self._directory(offset, length), tile_id)
            if entry is None:
                return None
            if entry.run_length > 0:
                return self._bytes(header["tile_data_offset"] + entry.offset, entry.length)
            offset, length = header["leaf_directory_offset"] + entry.offset, entry.length
        return None


def _sniff(data: bytes) -> str:
    """The format of a tile from its first bytes (an MBTiles file without a ``format`` entry)."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\x1f\x8b") or data[:1] == b"\x1a":  # gzip, or an MVT layer field
        return "pbf"
    return "unknown"
