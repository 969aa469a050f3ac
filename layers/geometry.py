"""layers.geometry: validate and repair polygon features, reporting every repair per feature."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from layers.errors import GeometryTypeError
from layers.model import Repair

POLYGONAL = ("Polygon", "MultiPolygon")


def polygonal_part(geom: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of a geometry (from a GeometryCollection too), or None if it has none."""
    if geom.geom_type in POLYGONAL:
        return geom
    if geom.geom_type == "GeometryCollection":
        polys = [g for g in shapely.get_parts(geom) if g.geom_type in POLYGONAL and not g.is_empty]
        if polys:
            return shapely.union_all(polys) if len(polys) > 1 else polys[0]
    return None


def _reject_non_polygons(types: np.ndarray, ids: list[str], source: str) -> None:
    bad = [(fid, t) for fid, t in zip(ids, types, strict=True)
           if t is not None and t not in POLYGONAL and t != "GeometryCollection"]
    if bad:
        fid, geom_type = bad[0]
        raise GeometryTypeError(
            f"{source}: feature {fid} is a {geom_type}; control layers and parcels must be polygons "
            f"({len(bad)} non-polygon feature(s) in all)")


# the order repair_geometries lists repairs in (by kind, then by row): chunks' repairs sorted by it
# (a stable sort) read as those of the whole layer
REPAIR_ORDER = {"z_dropped": 0, "empty": 1, "invalid": 2, "collapsed": 2, "collection": 3, "no_polygon": 3}


def repair_rank(problem: str) -> int:
    """Sort key of a repair's ``problem`` in :data:`REPAIR_ORDER` (unknown problems last)."""
    return REPAIR_ORDER.get(problem, len(REPAIR_ORDER))


def repair_frame(frame: gpd.GeoDataFrame, *, id_column: str = "feature_id",
                 source: str = "layer") -> tuple[gpd.GeoDataFrame, list[Repair]]:
    """Return ``frame`` with valid, non-empty, 2-D (Multi)Polygons and the list of repairs made.

    One row stays one source feature: multipart features are kept as MultiPolygons (collected),
    never exploded, so feature ids stay stable. Empty or collapsed features are dropped and reported.
    Non-polygon geometries are an error naming the feature.
    """
    ids = [str(v) for v in frame[id_column]]
    geoms = np.asarray(frame.geometry.values, dtype=object)
    out, keep, repairs = repair_geometries(ids, geoms, source=source)
    result = frame.copy()
    result = result.set_geometry(gpd.GeoSeries(out, index=frame.index, crs=frame.crs))
    return result.loc[keep].copy(), repairs


def repair_geometries(ids: list[str], geoms: np.ndarray, *, source: str = "layer"
                      ) -> tuple[np.ndarray, np.ndarray, list[Repair]]:
    """:func:`repair_frame` on plain arrays: (repaired geometries, which to keep, repairs made).

    For callers holding arrays (a single submitted parcel), so no GeoDataFrame is built for them.
    """
    geoms = np.asarray(geoms, dtype=object)
    missing = np.array([g is None for g in geoms], dtype=bool)
    types = np.array([None if g is None else g.geom_type for g in geoms], dtype=object)
    _reject_non_polygons(types, ids, source)

    repairs: list[Repair] = []
    keep = np.ones(len(geoms), dtype=bool)
    out = geoms.copy()
    present = ~missing
    has_z = np.zeros(len(geoms), dtype=bool)
    has_z[present] = shapely.has_z(geoms[present])
    if has_z.any():
        out[has_z] = shapely.force_2d(geoms[has_z])
    empty = missing.copy()
    empty[present] = shapely.is_empty(out[present])
    valid = np.zeros(len(geoms), dtype=bool)
    valid[~empty] = shapely.is_valid(out[~empty])
    for i in np.flatnonzero(has_z):
        repairs.append(Repair(ids[i], "z_dropped", "dropped Z coordinates"))
    for i in np.flatnonzero(empty):
        keep[i] = False
        repairs.append(Repair(ids[i], "empty", "dropped", "the feature has no geometry"))
    for i in np.flatnonzero(~empty & ~valid):
        reason = shapely.is_valid_reason(out[i])
        fixed = polygonal_part(shapely.make_valid(out[i], method="structure", keep_collapsed=False))
        if fixed is None or fixed.is_empty:
            keep[i] = False
            repairs.append(Repair(ids[i], "collapsed", "dropped", f"invalid ({reason}) with no area left"))
            continue
        before, after = float(shapely.area(out[i])), float(fixed.area)
        out[i] = fixed
        repairs.append(Repair(ids[i], "invalid", "make_valid",
                              f"{reason}; area {before:.2f} -> {after:.2f}"))
    for i in np.flatnonzero(keep & (types == "GeometryCollection") & valid):
        fixed = polygonal_part(out[i])
        if fixed is None:
            keep[i] = False
            repairs.append(Repair(ids[i], "no_polygon", "dropped", "collection without polygons"))
        else:
            out[i] = fixed
            repairs.append(Repair(ids[i], "collection", "kept polygonal parts"))
    return out, keep, repairs
