"""viewer.layer_index: one layer's tile index (EPSG:3857): simplified per zoom, clipped per tile."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from layers.crs import reproject_array
from viewer.tilegrid import WEB_MERCATOR, pixel_size, tile_bounds

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
CONFLICTS = "conflicts"
UNPLANNED = "unplanned"
PARCELS = "parcels"  # the project pool's parcels: not part of a version, so tiled on demand only


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
                    small = narrower_than(self.geoms, MARKER_PX * pixel_size(z))
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


def narrower_than(geoms: np.ndarray, size: float) -> np.ndarray:
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
        geoms = reproject_array(frame.geometry.to_numpy(), src, WEB_MERCATOR)
        return LayerIndex(geoms, [conflict_props(row) for row in frame.to_dict("records")], markers=True)
    members = frame.geometry.to_numpy()[layer_members(frame, layer, group)]
    return kind_index(dissolve(members) if dissolve_kind else members, layer, src)


def kind_index(parts: np.ndarray, layer: str, src: CRS, *, exact: bool = False) -> LayerIndex:
    """The tile index of a kind layer from its parts in the working CRS ``src``."""
    geoms = reproject_array(parts, src, WEB_MERCATOR)
    # area in the working CRS (metres), before the reprojection to web mercator
    # whole square metres (a 3–4-byte varint in the tile, not a 9-byte double; the panel's figures come
    # from identify, to the centimetre)
    areas = np.round(shapely.area(parts)).astype(np.int64) if len(parts) else np.empty(0, dtype=np.int64)
    return LayerIndex(geoms, [{"layer": layer, "kind": layer, "area_m2": int(a)} for a in areas], exact=exact)


def conflict_props(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("conflict_id", "kind_a", "kind_b", "rule", "resolution", "winner")
    props: dict[str, Any] = {k: str(row[k]) for k in keys if k in row and row[k] is not None}
    props["layer"] = CONFLICTS
    for side in ("layer_a", "layer_b"):  # the two plans' layer names, for the click popup
        if row.get(side) is not None:
            props[side] = str(row[side])
    props["area_m2"] = round(float(row.get("area_m2") or 0.0), 2)
    return props


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
    geoms = reproject_array(frame.geometry.to_numpy(), CRS.from_user_input(frame.crs), WEB_MERCATOR)
    props = [{"project_code": str(r.get("project_code", "")), "parcel_id": str(r.get("parcel_id", "")),
              "area_m2": round(float(r.get("area_m2") or 0.0), 2)} for r in frame.to_dict("records")]
    return LayerIndex(geoms, props), digest.hexdigest()
