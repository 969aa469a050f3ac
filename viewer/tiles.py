"""viewer.tiles: vector tiles (MVT, GeoJSON) of a blueprint version, clipped and simplified per zoom."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from viewer.coverage import LOW_ZOOM_MAX, atoms, low_zoom_layers, low_zoom_top
from viewer.mvt import encode_tile

log = logging.getLogger(__name__)

# Web-mercator tiling (XYZ scheme, y grows southwards), as Leaflet requests it.
EARTH_HALF = 20037508.342789244  # half the EPSG:3857 world width in metres
TILE_PX = 256
MAX_ZOOM = 22
MARGIN_PX = 4  # clip a little beyond the tile so strokes at the seam are not cut
SIMPLIFY_PX = 0.5  # simplification tolerance: half a screen pixel is invisible
MIN_AREA_PX2 = 0.25  # parts below a quarter of a square pixel are dropped at that zoom
# from this zoom a tile is clipped from its ancestor ANCESTOR_UP zooms out, itself clipped once from the layer
# and kept for its 4^ANCESTOR_UP tiles: a zone part spanning the city (10⁵ vertices at 10⁶ pieces) was clipped
# whole for every one of hundreds of street-zoom tiles
ANCESTOR_ZOOM = 12
ANCESTOR_UP = 3
ANCESTOR_CACHE = 64  # ancestors kept per layer (the archive walks a zoom column by column)
# conflicts are never dropped: one narrower than this many pixels is sent as a square of this size
# around a point inside it, so a 10 m² 差异图斑 still shows (outlined) on the whole-city view
MARKER_PX = 6.0
IDENTIFY_MAX_RADIUS_M = 2000.0
# below this zoom a kind layer's features carry only their kind: the whole-city tile holds tens of thousands
# of farmland parts, and a distinct area per part was a third of its bytes (a click asks the server anyway)
FULL_ATTRIBUTES_ZOOM = 12  # the most a click may reach out for a conflict drawn as a marker
WEB_MERCATOR = CRS.from_epsg(3857)
LONLAT = CRS.from_epsg(4326)
VERSIONS_TTL = 2.0  # seconds a version list is trusted (a tile burst asks hundreds of times)
CONFLICTS = "conflicts"
UNPLANNED = "unplanned"
PARCELS = "parcels"  # the project pool's parcels: not part of a version, so tiled on demand only
PARCELS_TTL = 10.0  # seconds the pool's parcels are trusted (a new project shows within this)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The EPSG:3857 bounds (minx, miny, maxx, maxy) of XYZ tile z/x/y."""
    size = 2 * EARTH_HALF / (1 << z)
    minx = -EARTH_HALF + x * size
    maxy = EARTH_HALF - y * size
    return minx, maxy - size, minx + size, maxy


def pixel_size(z: int) -> float:
    """Metres (EPSG:3857) per screen pixel at zoom ``z``."""
    return 2 * EARTH_HALF / (TILE_PX * (1 << z))


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile (x, y) containing a lon/lat point at zoom ``z``."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    lat_r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def valid_tile(z: int, x: int, y: int) -> bool:
    """Whether z/x/y names a tile of the XYZ pyramid (up to :data:`MAX_ZOOM`)."""
    return 0 <= z <= MAX_ZOOM and 0 <= x < (1 << z) and 0 <= y < (1 << z)


@functools.lru_cache(maxsize=16)
def _transformer(src: CRS, dst: CRS) -> Transformer:
    """A cached transformer (building one between GK and lon/lat costs ~0.1 s; pyproj ≥ 3.1 shares them
    safely between threads)."""
    return Transformer.from_crs(src, dst, always_xy=True)


def _transform(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Reproject a shapely array (vectorised, always lon/lat or easting/northing order)."""
    tr = _transformer(src, dst)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def layer_members(pieces: gpd.GeoDataFrame, layer: str, group: str | None) -> np.ndarray:
    """Boolean mask of the pieces drawn in ``layer``.

    Lines and zones use the *effective* kinds (after precedence), which is what the blueprint
    decides; overlays and the boundary also count what merely covers the piece.
    """
    if layer == UNPLANNED:
        return (pieces["kind"] == UNPLANNED).to_numpy()
    if group == "boundary" and not _names(pieces, "covered_by", layer).any():
        # the pieces partition the city area: when no piece names the boundary, all of them are it
        return np.ones(len(pieces), dtype=bool)
    columns = ["kinds"] if group in ("line", "zone") else ["kinds", "covered_by"]
    mask = np.zeros(len(pieces), dtype=bool)
    for column in columns:
        mask |= _names(pieces, column, layer)
    return mask


def _names(pieces: gpd.GeoDataFrame, column: str, key: str) -> np.ndarray:
    """Which pieces' JSON list of kind keys in ``column`` holds ``key``: a substring test for the quoted
    key (catalogue keys hold no quote), many times faster than parsing 10⁶ lists per layer."""
    if column not in pieces:
        return np.zeros(len(pieces), dtype=bool)
    quoted = json.dumps(key)
    # a city has a few dozen distinct lists: test each once (iterating 10⁶ arrow strings per layer took 7 s)
    codes, uniques = pd.factorize(pieces[column])
    found = np.fromiter((isinstance(v, str) and quoted in v for v in uniques), dtype=bool, count=len(uniques))
    return np.append(found, False)[codes]  # code -1 (a missing list) → False


def dissolve(geoms: np.ndarray) -> np.ndarray:
    """The polygon parts of the union of ``geoms`` (pieces of a kind form a coverage: fast path)."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    try:
        merged = shapely.coverage_union_all(geoms)
        if not shapely.is_valid(merged):
            # parts meeting at a single vertex make one self-touching ring: cheap to split
            merged = _polygonal(shapely.make_valid(merged))
    except shapely.errors.GEOSException:
        # not a clean coverage (e.g. a draft): the general union is slower but always right
        merged = shapely.union_all(geoms)
    parts = shapely.get_parts(merged)
    return parts[~shapely.is_empty(parts)]


@dataclass
class LayerIndex:
    """One layer of one version in EPSG:3857: geometries, their properties and an STRtree.

    ``markers``: features too small to see at a zoom are drawn as a :data:`MARKER_PX` square instead of
    being dropped (conflicts); the tree then also finds them by that square. ``exact``: drawn as they are
    at every zoom (the kind layers of a :class:`TileService` above :data:`LOW_ZOOM_MAX`: simplifying each
    layer on its own would open gaps between neighbouring layers; below it they come from the coverage)."""

    geoms: np.ndarray
    props: list[dict[str, Any]]
    markers: bool = False
    exact: bool = False
    tree: shapely.STRtree = field(init=False)
    _simplified: dict[int, np.ndarray] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ancestors: OrderedDict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=OrderedDict, init=False)
    # one ancestor clipped at a time (two threads asking for neighbouring tiles would clip it twice)
    _ancestor_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geoms)

    def at_zoom(self, z: int) -> np.ndarray:
        """The geometries simplified for zoom ``z`` (computed once per zoom, validity kept)."""
        if self.exact and not self.markers:
            return self.geoms
        with self._lock:
            if z not in self._simplified:
                simple = shapely.simplify(self.geoms, pixel_size(z) * SIMPLIFY_PX, preserve_topology=True)
                if self.markers:
                    small = _narrower_than(self.geoms, MARKER_PX * pixel_size(z))
                    simple[small] = _marker_squares(self.geoms[small], MARKER_PX * pixel_size(z))
                else:
                    # a part smaller than a quarter pixel cannot be seen at this zoom: do not send it
                    tiny = shapely.area(self.geoms) < MIN_AREA_PX2 * pixel_size(z) ** 2
                    simple[tiny] = shapely.Polygon()
                self._simplified[z] = _valid(simple)
            return self._simplified[z]

    def tile(self, z: int, x: int, y: int) -> list[tuple[shapely.Geometry, dict[str, Any]]]:
        """(geometry in EPSG:3857, properties) of every feature drawn in tile z/x/y."""
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        pad = pixel_size(z) * MARGIN_PX
        box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
        query = shapely.box(*box)
        if self.markers:  # a marker reaches MARKER_PX / 2 beyond its feature
            query = shapely.box(*shapely.buffer(query, MARKER_PX * pixel_size(z)).bounds)
        hits = self.tree.query(query, predicate="intersects")
        if len(hits) == 0:
            return []
        hits.sort()  # stable output order: the same tile is byte-identical every time
        if z >= ANCESTOR_ZOOM:
            # the ancestor's box holds this tile's box (margin included): its clip holds every hit
            up_hits, up_geoms = self._ancestor(z, x >> ANCESTOR_UP, y >> ANCESTOR_UP)
            clipped = _valid(shapely.clip_by_rect(up_geoms[np.searchsorted(up_hits, hits)], *box))
        else:
            clipped = _valid(shapely.clip_by_rect(self.at_zoom(z)[hits], *box))
        keep = ~shapely.is_empty(clipped) & (shapely.area(clipped) > 0)
        return [(g, self.props[i]) for g, i in zip(clipped[keep], hits[keep], strict=True)]

    def _ancestor(self, z: int, ax: int, ay: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted ids, geometries clipped to its box) of the features meeting tile (z − ANCESTOR_UP, ax, ay),
        padded by its own margin (wider than its tiles' margins), drawn as at zoom ``z``; cached."""
        key = (z, ax, ay)
        with self._ancestor_lock:
            found = self._ancestors.get(key)
            if found is not None:
                self._ancestors.move_to_end(key)
                return found
            found = self._clip_ancestor(z, ax, ay)
            self._ancestors[key] = found
            while len(self._ancestors) > ANCESTOR_CACHE:
                self._ancestors.popitem(last=False)
            return found

    def _clip_ancestor(self, z: int, ax: int, ay: int) -> tuple[np.ndarray, np.ndarray]:
        minx, miny, maxx, maxy = tile_bounds(z - ANCESTOR_UP, ax, ay)
        # the tiles' margin, plus a marker's reach when there are markers: as in tile(), at zoom z
        pad = pixel_size(z) * (MARGIN_PX + (MARKER_PX if self.markers else 0.0)) * 2
        box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
        hits = np.sort(self.tree.query(shapely.box(*box), predicate="intersects"))
        return hits, _valid(shapely.clip_by_rect(self.at_zoom(z)[hits], *box))


def _narrower_than(geoms: np.ndarray, size: float) -> np.ndarray:
    """Which geometries fit in a ``size`` square (bounding box)."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    b = shapely.bounds(geoms)
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < size


def _marker_squares(geoms: np.ndarray, size: float) -> np.ndarray:
    """A ``size`` square around a point inside each geometry: how a too-small feature is drawn."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    x, y = shapely.get_coordinates(shapely.point_on_surface(geoms)).T
    half = size / 2
    return shapely.box(x - half, y - half, x + half, y + half)


def _valid(geoms: np.ndarray) -> np.ndarray:
    """Repair the few geometries simplification or clipping left invalid; keep polygons only."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        fixed = shapely.make_valid(geoms[bad])
        # make_valid may yield collections with stray lines: keep the polygonal part
        geoms = geoms.copy()
        geoms[bad] = [_polygonal(g) for g in fixed]
    return geoms


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a ``make_valid`` result: its parts do not overlap, so they are gathered, not unioned
    (a union of a whole layer's parts took a third of the archive build at 10⁵ pieces)."""
    parts = shapely.get_parts(shapely.get_parts(geom))  # the collection, then its multi-polygons
    polygons = parts[shapely.get_type_id(parts) == 3]
    if len(polygons) == 1:
        return polygons[0]
    return shapely.multipolygons(polygons) if len(polygons) else shapely.Polygon()


def build_index(frame: gpd.GeoDataFrame, layer: str, group: str | None, *,
                dissolve_kind: bool = True) -> LayerIndex:
    """The tile index of ``layer`` from a version's pieces (or, for ``conflicts``, its conflicts)."""
    if frame.crs is None:
        raise ValueError(f"layer {layer}: frame has no CRS")
    src = CRS.from_user_input(frame.crs)
    if layer == CONFLICTS:
        geoms = _transform(frame.geometry.to_numpy(), src, WEB_MERCATOR)
        return LayerIndex(geoms, [_conflict_props(row) for row in frame.to_dict("records")], markers=True)
    members = frame.geometry.to_numpy()[layer_members(frame, layer, group)]
    return kind_index(dissolve(members) if dissolve_kind else members, layer, src)


def kind_index(parts: np.ndarray, layer: str, src: CRS, *, exact: bool = False) -> LayerIndex:
    """The tile index of a kind layer from its parts in the working CRS ``src``."""
    geoms = _transform(parts, src, WEB_MERCATOR)
    # area in the working CRS (metres), before the reprojection to web mercator
    # whole square metres (a 3–4-byte varint in the tile, not a 9-byte double; the panel's figures come
    # from identify, to the centimetre)
    areas = np.round(shapely.area(parts)).astype(np.int64) if len(parts) else np.empty(0, dtype=np.int64)
    return LayerIndex(geoms, [{"layer": layer, "kind": layer, "area_m2": int(a)} for a in areas], exact=exact)


def ground_pixel(z: int, lat: float) -> float:
    """Metres on the ground (a conformal working CRS) per screen pixel at zoom ``z`` and latitude ``lat``."""
    return pixel_size(z) * math.cos(math.radians(lat))


def _conflict_props(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("conflict_id", "kind_a", "kind_b", "rule", "resolution", "winner")
    props: dict[str, Any] = {k: str(row[k]) for k in keys if k in row and row[k] is not None}
    props["layer"] = CONFLICTS
    for side in ("layer_a", "layer_b"):  # the two plans' layer names, for the click popup
        if row.get(side) is not None:
            props[side] = str(row[side])
    props["area_m2"] = round(float(row.get("area_m2") or 0.0), 2)
    return props


def tile_geojson(features: list[tuple[shapely.Geometry, dict[str, Any]]]) -> bytes:
    """A GeoJSON FeatureCollection (EPSG:4326, 7 decimals ≈ 1 cm) from EPSG:3857 features."""
    if not features:
        return b'{"type":"FeatureCollection","features":[]}'
    geoms = _transform(np.array([g for g, _ in features], dtype=object), WEB_MERCATOR, LONLAT)
    geoms = shapely.set_precision(geoms, 1e-7)
    texts = shapely.to_geojson(geoms)
    body = ",".join(
        '{"type":"Feature","properties":' + json.dumps(p, ensure_ascii=False) + ',"geometry":' + t + "}"
        for (_, p), t, g in zip(features, texts, geoms, strict=True) if not shapely.is_empty(g)
    )
    return ('{"type":"FeatureCollection","features":[' + body + "]}").encode("utf-8")


def tile_mvt(layers: list[tuple[str, list[tuple[shapely.Geometry, dict[str, Any]]]]],
             z: int, x: int, y: int) -> bytes:
    """One gzip-compressed MVT tile carrying every layer given (EPSG:3857 features); an empty tile is b""."""
    low = z < FULL_ATTRIBUTES_ZOOM
    # the MVT layer name already says which layer a feature is in
    drops = {name: _LOW_DROP if low and name != CONFLICTS else _DROP for name, _ in layers}
    raw = encode_tile(layers, tile_bounds(z, x, y), skip=drops)
    return gzip.compress(raw, compresslevel=6, mtime=0) if raw else b""


_DROP, _LOW_DROP = frozenset({"layer"}), frozenset({"layer", "area_m2"})


def build_parcels_index(frame: gpd.GeoDataFrame) -> tuple[LayerIndex, str]:
    """The tile index of the project pool's parcels and a revision string that changes with them."""
    digest = hashlib.blake2b(digest_size=8)
    keys = ("project_code", "parcel_id", "name", "area_m2")
    rows = frame[[k for k in keys if k in frame]].astype(str).to_numpy().tolist() if len(frame) else []
    digest.update(json.dumps(rows, ensure_ascii=False).encode("utf-8"))
    for blob in shapely.to_wkb(frame.geometry.to_numpy()) if len(frame) else []:
        digest.update(blob)
    if len(frame) == 0 or frame.crs is None:
        return LayerIndex(np.empty(0, dtype=object), []), digest.hexdigest()
    geoms = _transform(frame.geometry.to_numpy(), CRS.from_user_input(frame.crs), WEB_MERCATOR)
    props = [{"project_code": str(r.get("project_code", "")), "parcel_id": str(r.get("parcel_id", "")),
              "area_m2": round(float(r.get("area_m2") or 0.0), 2)} for r in frame.to_dict("records")]
    return LayerIndex(geoms, props), digest.hexdigest()


class LRU:
    """A small thread-safe LRU cache with an optional time-to-live per entry."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def _fresh(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and (hit[0] == math.inf or hit[0] > time.monotonic()):
                self._data.move_to_end(key)
                return True, hit[1]
            return False, None

    def get(self, key: Hashable, make: Callable[[], Any], ttl: float | None = None) -> Any:
        found, value = self._fresh(key)
        if found:
            return value
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        # one build per key (a burst of tiles must not dissolve the same layer ten times);
        # different keys build in parallel, so a slow layer does not hold up the others
        with building:
            found, value = self._fresh(key)
            if found:
                return value
            try:
                value = make()
            except BaseException:
                with self._lock:  # nothing was built: do not keep this key's lock for ever
                    self._building.pop(key, None)
                raise
            now = time.monotonic()
            with self._lock:
                self._building.pop(key, None)
                self._store(key, value, None if ttl is None else now + ttl)
        return value

    def _store(self, key: Hashable, value: Any, expires: float | None) -> None:
        # called with self._lock held
        self._data[key] = (math.inf if expires is None else expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class TileService:
    """Tiles of every layer of every version; indexes and tiles cached, published ones for good.

    ``groups`` maps each catalogue kind to its group (line, zone, overlay, boundary). Drafts can
    still change, so what is derived from them lives ``draft_ttl`` seconds only.
    """

    def __init__(self, source: Any, groups: dict[str, str], *, tile_cache: int = 20_000,
                 draft_ttl: float = 30.0) -> None:
        self.source = source
        self.groups = dict(groups)
        self.draft_ttl = draft_ttl
        self._frames = LRU(4)
        self._indexes = LRU(128)
        self._tiles = LRU(tile_cache)
        self._versions = LRU(1)
        self._published: set[str] = set()

    def layer_names(self) -> list[str]:
        """Every layer a tile can be asked for: the catalogue kinds, unplanned, conflicts."""
        return [*self.groups, UNPLANNED, CONFLICTS]

    def status(self, version: str) -> str | None:
        """``"published"``, ``"draft"`` or ``None`` (unknown).

        Asked for on every tile, so the version list is re-read at most every ``VERSIONS_TTL``
        seconds; a published version stays published, so that answer is kept for good.
        """
        if version in self._published:
            return "published"
        statuses = self._versions.get("versions", self._read_versions, VERSIONS_TTL)
        if version not in statuses:  # maybe just built: look again, once
            self._versions.clear()
            statuses = self._versions.get("versions", self._read_versions, VERSIONS_TTL)
        if statuses.get(version) == "published":
            self._published.add(version)
        return statuses.get(version)

    def _read_versions(self) -> dict[str, str]:
        return {str(v.get("version")): str(v.get("status")) for v in self.source.versions()}

    def _ttl(self, version: str) -> float | None:
        return None if self.status(version) == "published" else self.draft_ttl

    def _frame(self, version: str, what: str, ttl: float | None) -> gpd.GeoDataFrame:
        read = self.source.conflicts if what == CONFLICTS else self.source.pieces
        return self._frames.get((version, what), lambda: read(version), ttl)

    def kind_names(self) -> list[str]:
        """The layers drawn from the pieces (each a bit of an atom's code, in this order)."""
        return [*self.groups, UNPLANNED]

    def index(self, version: str, layer: str) -> LayerIndex:
        """The (cached) index of one layer; ``KeyError`` for an unknown layer or version."""
        if layer not in self.layer_names():
            raise KeyError(layer)
        ttl = self._ttl(version)
        if layer == CONFLICTS:
            return self._indexes.get((version, layer), lambda: build_index(
                self._frame(version, CONFLICTS, ttl), layer, None), ttl)
        return self._indexes.get((version, layer), lambda: self._kind_index(version, layer), ttl)

    def _kind_index(self, version: str, layer: str) -> LayerIndex:
        """A kind layer dissolved from the atoms holding it (fewer, larger inputs than its pieces)."""
        geoms, codes, src, _ = self.atoms(version)
        bit = self.kind_names().index(layer)
        members = geoms[(codes >> bit) & 1 == 1]
        return kind_index(dissolve(members) if len(members) else members, layer, src, exact=True)

    def atoms(self, version: str, workers: int = 1) -> tuple[np.ndarray, np.ndarray, CRS, float]:
        """(atoms in the working CRS, their layer codes, that CRS, the city's middle latitude), cached: the
        pieces dissolved by the set of layers they are in (:func:`viewer.coverage.atoms`)."""
        ttl = self._ttl(version)

        def make() -> tuple[np.ndarray, np.ndarray, CRS, float]:
            pieces = self._frame(version, "pieces", ttl)
            if pieces.crs is None:
                raise ValueError(f"version {version}: pieces have no CRS")
            src = CRS.from_user_input(pieces.crs)
            codes = np.zeros(len(pieces), dtype=np.int64)
            for bit, name in enumerate(self.kind_names()):
                codes |= layer_members(pieces, name, self.groups.get(name)).astype(np.int64) << bit
            parts, part_codes = atoms(pieces.geometry.to_numpy(), codes, dissolve, workers)
            lat = 0.0
            if len(pieces):
                w, s, e, n = pieces.total_bounds
                lat = float(_transformer(src, LONLAT).transform((w + e) / 2, (s + n) / 2)[1])
            return parts, part_codes, src, lat

        return self._indexes.get((version, "*atoms"), make, ttl)

    def low_zooms(self, version: str) -> dict[int, dict[str, LayerIndex]]:
        """Every kind layer at every zoom up to :func:`viewer.coverage.low_zoom_top` (10–12), from the merged,
        coverage-simplified atoms."""
        ttl = self._ttl(version)

        def make() -> dict[int, dict[str, LayerIndex]]:
            geoms, codes, src, lat = self.atoms(version)
            top = low_zoom_top(shapely.area(geoms), lambda z: ground_pixel(z, lat))
            zooms = range(0, top + 1)
            by_zoom = low_zoom_layers(geoms, codes, self.kind_names(), [z for z in zooms if z >= 5],
                                      lambda z: ground_pixel(z, lat), dissolve)
            coarsest = by_zoom[min(by_zoom)]
            return {z: {name: kind_index(parts, name, src, exact=True)
                        for name, parts in by_zoom.get(z, coarsest).items()} for z in zooms}

        return self._indexes.get((version, "*low"), make, ttl)

    def kind_tile(self, version: str, layer: str, z: int, x: int, y: int) -> list[tuple[shapely.Geometry,
                                                                                           dict[str, Any]]]:
        """The features of one layer in tile z/x/y: from the merged coverage at low zooms, else the layer."""
        if layer not in self.layer_names():
            raise KeyError(layer)
        low = self.low_zooms(version) if layer != CONFLICTS and z <= LOW_ZOOM_MAX else {}
        if z in low:
            return low[z][layer].tile(z, x, y)
        return self.index(version, layer).tile(z, x, y)

    def indexes(self, version: str, workers: int = 1) -> dict[str, LayerIndex]:
        """Every layer's index of ``version``, built on ``workers`` threads (GEOS releases the GIL while
        it dissolves, so two layers build at once on two cores)."""
        names = self.layer_names()
        self.atoms(version, workers)  # once, its groups on ``workers`` threads; every kind layer needs it
        if workers <= 1:
            return {name: self.index(version, name) for name in names}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tile-index") as pool:
            return dict(zip(names, pool.map(lambda name: self.index(version, name), names), strict=True))

    def preload(self, version: str, indexes: dict[str, LayerIndex]) -> None:
        """Adopt indexes saved beside a published version's archive (no dissolving after a restart); keys
        ``layer@z`` are that layer at low zoom ``z`` (:meth:`low_zooms`; zooms below the lowest saved one
        draw the lowest)."""
        low: dict[int, dict[str, LayerIndex]] = {}
        for key, index in indexes.items():
            name, _, zoom = key.partition("@")
            if name in self.layer_names() and zoom:
                low.setdefault(int(zoom), {})[name] = index
            elif name in self.layer_names():
                self._indexes.get((version, name), lambda index=index: index, self._ttl(version))
        if low and all(set(layers) == set(self.kind_names()) for layers in low.values()):
            coarsest = low[min(low)]
            whole = {z: low.get(z, coarsest) for z in range(0, max(low) + 1)}
            self._indexes.get((version, "*low"), lambda: whole, self._ttl(version))

    def saved_low_zooms(self, version: str) -> dict[str, LayerIndex]:
        """The low-zoom layers as ``layer@z`` entries for :func:`viewer.archive.save_parts` (zooms ≥ 5: below,
        the same layers are drawn)."""
        return {f"{name}@{z}": index for z, layers in self.low_zooms(version).items() if z >= 5
                for name, index in layers.items()}

    def identify(self, version: str, lon: float, lat: float) -> list[dict[str, Any]]:
        """The pieces of ``version`` under a lon/lat point; ``KeyError`` for an unknown version."""
        status = self.status(version)
        if status is None:
            raise KeyError(version)
        return identify(self._frame(version, "pieces", self._ttl(version)), lon, lat)

    def mvt(self, version: str, z: int, x: int, y: int) -> bytes:
        """Gzipped MVT bytes of tile z/x/y of ``version``: every layer, each as a named MVT layer."""
        if not valid_tile(z, x, y):
            raise KeyError(f"{z}/{x}/{y}")
        if self.status(version) is None:
            raise KeyError(version)
        return self._tiles.get((version, "mvt", z, x, y), lambda: self._build_mvt(version, z, x, y),
                               self._ttl(version))

    def _parcels(self) -> tuple[LayerIndex, str] | None:
        read = getattr(self.source, "project_parcels", None)  # optional in ViewerSource
        if read is None:
            return None
        return self._indexes.get(("*", PARCELS), lambda: build_parcels_index(read()), PARCELS_TTL)

    def parcels_revision(self) -> str | None:
        """Changes whenever the project pool's parcels change; None when the source has no pool or
        cannot read it now (the map then shows the blueprint without the pool, rather than failing)."""
        try:
            found = self._parcels()
        except Exception:
            log.exception("the project pool's parcels could not be read for the map")
            return None
        return None if found is None else found[1]

    def parcels_mvt(self, z: int, x: int, y: int) -> bytes:
        """The raw (not gzipped) MVT ``parcels`` layer of tile z/x/y; b"" when no parcel is there."""
        found = self._parcels()
        if found is None or not valid_tile(z, x, y):
            return b""
        return encode_tile([(PARCELS, [(g, p) for g, p in found[0].tile(z, x, y)])], tile_bounds(z, x, y))

    def _build_mvt(self, version: str, z: int, x: int, y: int) -> bytes:
        layers = [(name, self.kind_tile(version, name, z, x, y)) for name in self.layer_names()]
        return tile_mvt(layers, z, x, y)

    def identify_conflicts(self, version: str, lon: float, lat: float,
                           radius_m: float = 0.0) -> list[dict[str, Any]]:
        """The conflicts (差异图斑) of ``version`` under a lon/lat point, or within ``radius_m`` of it (a
        click on a conflict drawn as a marker at city scale); ``KeyError``: unknown version."""
        if self.status(version) is None:
            raise KeyError(version)
        frame = self._frame(version, CONFLICTS, self._ttl(version))
        if len(frame) == 0:
            return []
        to_work = _transformer(LONLAT, CRS.from_user_input(frame.crs))
        point = shapely.Point(*to_work.transform(lon, lat))
        hits = frame.sindex.query(point, predicate="intersects")
        if len(hits) == 0 and radius_m > 0:
            radius = min(radius_m, IDENTIFY_MAX_RADIUS_M)
            near = frame.sindex.query(point, predicate="dwithin", distance=radius)
            # only conflicts drawn as markers there: small ones, nearest first
            geoms = frame.geometry.to_numpy()
            small = near[_narrower_than(geoms[near], 2 * radius)]
            hits = small[np.argsort(shapely.distance(geoms[small], point), kind="stable")][:3]
            return [_conflict_props(row) for row in frame.iloc[hits].to_dict("records")]
        return [_conflict_props(row) for row in frame.iloc[np.sort(hits)].to_dict("records")]

    def tile(self, version: str, layer: str, z: int, x: int, y: int) -> bytes:
        """GeoJSON bytes of tile z/x/y of ``layer`` in ``version``."""
        if not valid_tile(z, x, y):
            raise KeyError(f"{z}/{x}/{y}")
        if self.status(version) is None:
            raise KeyError(version)
        ttl = self._ttl(version)
        return self._tiles.get(
            (version, layer, z, x, y),
            lambda: tile_geojson(self.kind_tile(version, layer, z, x, y)),
            ttl,
        )


def identify(pieces: gpd.GeoDataFrame, lon: float, lat: float) -> list[dict[str, Any]]:
    """The pieces under a lon/lat point: what the blueprint says there (kinds after precedence, sources)."""
    to_work = _transformer(LONLAT, CRS.from_user_input(pieces.crs))
    point = shapely.Point(*to_work.transform(lon, lat))
    hits = pieces.sindex.query(point, predicate="intersects")
    out = []
    for row in pieces.iloc[np.sort(hits)].to_dict("records"):
        lists = {k: json.loads(row.get(k) or "[]") for k in ("kinds", "covered_by", "sources")}
        out.append({"piece_id": str(row.get("piece_id", "")), "kind": str(row.get("kind", "")), **lists,
                    "area_m2": round(float(row.get("area_m2") or 0), 2)})
    return out
