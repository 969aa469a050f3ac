"""viewer.compare: what changed between two blueprint versions, area by kind (added / removed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from layers.catalogue import Catalogue
from layers.crs import OUTPUT_CRS
from viewer.layer_index import UNPLANNED, dissolve, layer_members
from viewer.lru import LRU
from viewer.page import render_template, script_json
from viewer.source import ViewerSource

DISPLAY_TOLERANCE_M = 1.0  # the compare map simplifies to a metre: enough to see, light to send
OUTLINE_TOLERANCE_M = 10.0  # the city outline is context only
MIN_CHANGE_M2 = 0.01  # below a hundredth of a square metre a difference is rounding, not a change


@dataclass(frozen=True)
class KindChange:
    """How one kind changed from version a to version b (plane areas, m², working CRS)."""

    kind: str
    name_zh: str
    name_en: str
    colour: str
    area_a_m2: float
    area_b_m2: float
    added_m2: float
    removed_m2: float
    added: shapely.Geometry = field(repr=False)
    removed: shapely.Geometry = field(repr=False)

    @property
    def changed(self) -> bool:
        return self.added_m2 > MIN_CHANGE_M2 or self.removed_m2 > MIN_CHANGE_M2

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name_zh": self.name_zh, "name_en": self.name_en,
                "area_a_m2": round(self.area_a_m2, 2), "area_b_m2": round(self.area_b_m2, 2),
                "added_m2": round(self.added_m2, 2), "removed_m2": round(self.removed_m2, 2),
                "net_m2": round(self.area_b_m2 - self.area_a_m2, 2), "changed": self.changed}


@dataclass(frozen=True)
class VersionDiff:
    """The per-kind changes between two versions, in catalogue order."""

    a: str
    b: str
    crs: CRS
    kinds: tuple[KindChange, ...]
    outline: shapely.Geometry = field(default_factory=shapely.Polygon, repr=False)  # b's city area

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kinds": [k.as_dict() for k in self.kinds]}


def _kind_geometry(pieces: gpd.GeoDataFrame, kind: str, group: str | None) -> shapely.Geometry:
    parts = dissolve(pieces.geometry.to_numpy()[layer_members(pieces, kind, group)])
    return shapely.union_all(parts) if len(parts) else shapely.Polygon()


def _polygonal_area(geom: shapely.Geometry) -> float:
    # a difference can leave zero-area lines along shared edges: only polygons count
    return float(sum(p.area for p in shapely.get_parts(geom) if p.geom_type == "Polygon"))


def diff_pieces(pieces_a: gpd.GeoDataFrame, pieces_b: gpd.GeoDataFrame, catalogue: Catalogue,
                a: str = "a", b: str = "b") -> VersionDiff:
    """Per kind: area in each version and what was added (b − a) and removed (a − b)."""
    if not CRS.from_user_input(pieces_a.crs).equals(CRS.from_user_input(pieces_b.crs)):
        raise ValueError(f"versions {a} and {b} are in different CRSs")
    specs: list[tuple[str, str, str, str, str | None]] = [
        (k.key, k.name_zh, k.name_en, k.colour, k.group) for k in catalogue.values()]
    specs.append((UNPLANNED, "未规划", "Unplanned", "#bbbbbb", None))
    changes = []
    for key, zh, en, colour, group in specs:
        ga, gb = _kind_geometry(pieces_a, key, group), _kind_geometry(pieces_b, key, group)
        added, removed = shapely.difference(gb, ga), shapely.difference(ga, gb)
        changes.append(KindChange(key, zh, en, colour, ga.area, gb.area, _polygonal_area(added),
                                  _polygonal_area(removed), added, removed))
    outline = shapely.union_all(dissolve(pieces_b.geometry.to_numpy()))
    return VersionDiff(a, b, CRS.from_user_input(pieces_a.crs), tuple(changes),
                       shapely.simplify(outline, OUTLINE_TOLERANCE_M))


_cache = LRU(16)


def compare_versions(source: ViewerSource, a: str, b: str, catalogue: Catalogue) -> VersionDiff:
    """The diff of two stored versions; cached when both are published (they never change)."""
    published = {str(v.get("version")) for v in source.versions() if v.get("status") == "published"}
    ttl = None if {a, b} <= published else 30.0
    return _cache.get((id(source), a, b), lambda: diff_pieces(source.pieces(a), source.pieces(b),
                                                              catalogue, a, b), ttl)


def diff_geojson(diff: VersionDiff) -> dict[str, Any]:
    """Added and removed areas as one GeoJSON FeatureCollection (EPSG:4326) for the compare map."""
    rows: list[dict[str, Any]] = []
    for change in diff.kinds:
        for what, geom in (("added", change.added), ("removed", change.removed)):
            area = change.added_m2 if what == "added" else change.removed_m2
            if area > MIN_CHANGE_M2:
                rows.append({"kind": change.kind, "change": what, "colour": change.colour,
                             "label": f"{change.name_zh} {change.name_en}", "area_m2": round(area, 2),
                             "geometry": shapely.simplify(geom, DISPLAY_TOLERANCE_M)})
    if not rows:
        return {"type": "FeatureCollection", "features": []}
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=diff.crs).to_crs(OUTPUT_CRS)
    return json.loads(frame.to_json(drop_id=True))


def outline_geojson(diff: VersionDiff) -> dict[str, Any] | None:
    """The city outline of version b (EPSG:4326), drawn faintly under the changes for orientation."""
    if diff.outline.is_empty:
        return None
    outline = gpd.GeoSeries([diff.outline], crs=diff.crs).to_crs(OUTPUT_CRS).iloc[0]
    return json.loads(shapely.to_geojson(outline))


def _bounds_4326(features: dict[str, Any]) -> list[float] | None:
    if not features["features"]:
        return None
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in features["features"]])
    return [float(v) for v in np.asarray(shapely.total_bounds(geoms))]


def render_compare(diff: VersionDiff, versions: list[str],
                   city_bounds: tuple[float, float, float, float]) -> str:
    """The compare page: a table by kind and a small map of the changed areas (inline, offline)."""
    features = diff_geojson(diff)
    return render_template("compare.html", versions=versions, a=diff.a, b=diff.b,
                           result=diff.as_dict(), colours={k.kind: k.colour for k in diff.kinds},
                           features=script_json(features), outline=script_json(outline_geojson(diff)),
                           any_change=any(k.changed for k in diff.kinds),
                           bounds=json.dumps(_bounds_4326(features) or list(city_bounds)))
