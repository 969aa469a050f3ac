"""viewer.tiles: the tile service — every layer of every version as MVT or GeoJSON tiles, cached; identify."""

from __future__ import annotations

import gzip
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from layers.crs import pipeline_transformer, reproject_array
from viewer.coverage import LOW_ZOOM_MAX, atoms, low_zoom_layers, low_zoom_top
from viewer.layer_index import (
    CONFLICTS,
    PARCELS,
    UNPLANNED,
    LayerIndex,
    build_index,
    build_parcels_index,
    conflict_props,
    dissolve,
    kind_index,
    layer_members,
    narrower_than,
)
from viewer.lru import LRU
from viewer.mvt import encode_tile
from viewer.tilegrid import (
    LONLAT,
    WEB_MERCATOR,
    ground_pixel,
    tile_bounds,
    valid_tile,
)

log = logging.getLogger(__name__)

IDENTIFY_MAX_RADIUS_M = 2000.0  # the most a click may reach out for a conflict drawn as a marker
# below this zoom a kind layer's features carry only their kind: the whole-city tile holds tens of thousands
# of farmland parts, and a distinct area per part was a third of its bytes (a click asks the server anyway)
FULL_ATTRIBUTES_ZOOM = 12
VERSIONS_TTL = 2.0  # seconds a version list is trusted (a tile burst asks hundreds of times)
PARCELS_TTL = 10.0  # seconds the pool's parcels are trusted (a new project shows within this)


def tile_geojson(features: list[tuple[shapely.Geometry, dict[str, Any]]]) -> bytes:
    """A GeoJSON FeatureCollection (EPSG:4326, 7 decimals ≈ 1 cm) from EPSG:3857 features."""
    if not features:
        return b'{"type":"FeatureCollection","features":[]}'
    geoms = reproject_array(np.array([g for g, _ in features], dtype=object), WEB_MERCATOR, LONLAT)
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
                lat = float(pipeline_transformer(src, LONLAT).transform((w + e) / 2, (s + n) / 2)[1])
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
        to_work = pipeline_transformer(LONLAT, CRS.from_user_input(frame.crs))
        point = shapely.Point(*to_work.transform(lon, lat))
        hits = frame.sindex.query(point, predicate="intersects")
        if len(hits) == 0 and radius_m > 0:
            radius = min(radius_m, IDENTIFY_MAX_RADIUS_M)
            near = frame.sindex.query(point, predicate="dwithin", distance=radius)
            # only conflicts drawn as markers there: small ones, nearest first
            geoms = frame.geometry.to_numpy()
            small = near[narrower_than(geoms[near], 2 * radius)]
            hits = small[np.argsort(shapely.distance(geoms[small], point), kind="stable")][:3]
            return [conflict_props(row) for row in frame.iloc[hits].to_dict("records")]
        return [conflict_props(row) for row in frame.iloc[np.sort(hits)].to_dict("records")]

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
    to_work = pipeline_transformer(LONLAT, CRS.from_user_input(pieces.crs))
    point = shapely.Point(*to_work.transform(lon, lat))
    hits = pieces.sindex.query(point, predicate="intersects")
    out = []
    for row in pieces.iloc[np.sort(hits)].to_dict("records"):
        lists = {k: json.loads(row.get(k) or "[]") for k in ("kinds", "covered_by", "sources")}
        out.append({"piece_id": str(row.get("piece_id", "")), "kind": str(row.get("kind", "")), **lists,
                    "area_m2": round(float(row.get("area_m2") or 0), 2)})
    return out
