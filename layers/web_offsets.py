"""layers.web_offsets: GCJ-02 / BD-09 (Chinese web-map offsets) — undoing them, and telling them from WGS 84.

The offset CRS itself (:class:`layers.crs.OffsetCRS`, parsed from ``--crs GCJ02``) is decided in
``layers.crs``; this module moves coordinates and reads the hints (attributes, a misfit with the city).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from layers.crs import CGCS2000, OFFSET_DATUMS, transformer
from layers.errors import WebMapOffsetError


def _invert(forward: Callable[[float, float], tuple[float, float]], lat: float,
            lon: float) -> tuple[float, float]:
    """The WGS 84 point that ``forward`` (an offset, lat/lon order) maps onto (lat, lon): fixed-point
    iteration to 1e-10° (≈ 0.01 mm); the offset changes slowly, so a few steps suffice."""
    wlat, wlon = lat, lon
    for _ in range(40):
        flat, flon = forward(wlat, wlon)
        dlat, dlon = flat - lat, flon - lon
        wlat, wlon = wlat - dlat, wlon - dlon
        if abs(dlat) < 1e-10 and abs(dlon) < 1e-10:
            break
    return wlat, wlon


def undo_offset(geoms: NDArray[np.object_], offset: str) -> NDArray[np.object_]:
    """Geometries in GCJ-02 or BD-09 longitude/latitude moved to WGS 84 (exact inverse)."""
    import eviltransform

    forward = eviltransform.wgs2gcj if offset == "GCJ02" else eviltransform.wgs2bd

    def convert(lonlat: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty_like(lonlat)
        for i, (lon, lat) in enumerate(lonlat.tolist()):
            wlat, wlon = _invert(forward, lat, lon)
            out[i] = (wlon, wlat)
        return out

    return np.asarray(shapely.transform(geoms, convert), dtype=object)


def offset_note(offset: str) -> str:
    return (f"coordinates converted from {OFFSET_DATUMS[offset]} to WGS 84 with the exact inverse "
            "(iterated to 1e-10°); WGS 84 taken as CGCS2000 (they differ by < 1 m)")


@dataclass(frozen=True)
class OffsetFit:
    """How much of some geometries lies outside a reference area, before and after undoing an offset."""

    offset: str
    outside_ratio: float  # share of the area outside the reference as read (as WGS 84)
    outside_ratio_undone: float  # the same once moved from ``offset`` to WGS 84


def web_map_offset_fit(geoms: NDArray[np.object_], reference: shapely.Geometry, crs: CRS, *,
                       min_outside: float = 0.002) -> OffsetFit | None:
    """An offset datum (GCJ-02, BD-09) that explains why ``geoms`` (read as WGS 84 lon/lat, now in
    ``crs``) stick out of ``reference`` (the city, in ``crs``): at least ``min_outside`` of their area
    outside, and undoing the offset leaves at most a tenth of that outside. None when nothing fits."""
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    total = float(shapely.area(geoms).sum())
    if total <= 0:
        return None
    shapely.prepare(reference)
    loose = geoms[~shapely.contains(reference, geoms)]
    before = float(shapely.area(shapely.difference(loose, reference)).sum()) / total
    if before < min_outside:
        return None
    to_geo, from_geo = transformer(crs, CGCS2000), transformer(CGCS2000, crs)
    for offset in OFFSET_DATUMS:
        lonlat = shapely.transform(loose, lambda xy: np.column_stack(to_geo.transform(xy[:, 0], xy[:, 1])))
        moved = shapely.transform(undo_offset(np.asarray(lonlat, dtype=object), offset),
                                  lambda xy: np.column_stack(from_geo.transform(xy[:, 0], xy[:, 1])))
        after = float(shapely.area(shapely.difference(moved, reference)).sum()) / total
        if after <= 0.1 * before:
            return OffsetFit(offset, before, after)
    return None


# column names that only offset-datum data carries, and values naming a web map as the source
OFFSET_COLUMN_HINTS = {"gcj": "GCJ02", "amap": "GCJ02", "gaode": "GCJ02", "高德": "GCJ02", "火星": "GCJ02",
                       "bd09": "BD09", "baidu": "BD09", "百度": "BD09"}
SOURCE_COLUMNS = ("source", "来源", "数据来源", "coord_type", "coordtype", "coordsys", "坐标系", "坐标类型")
OFFSET_VALUE_HINTS = {"高德": "GCJ02", "amap": "GCJ02", "gaode": "GCJ02", "gcj": "GCJ02", "腾讯": "GCJ02",
                      "tencent": "GCJ02", "百度": "BD09", "baidu": "BD09", "bd09": "BD09"}


def offset_hint(columns: Sequence[object], values: Callable[[str], list[str]], *,
                implied: bool) -> tuple[str, str] | None:
    """(offset datum, why) when attributes say the lon/lat come from a Chinese web map, else None.

    Column names (``gcj_lng``, ``amap_id``...) and the 阿里云 DataV boundary layout (``adcode`` with
    ``center``/``centroid``, published in GCJ-02) count always; a source column naming 高德/百度... only
    when the file states no CRS of its own (a file that declares EPSG:4490 has been converted).
    """
    names = {str(c).strip().lower(): str(c) for c in columns}
    for name, original in names.items():
        for hint, offset in OFFSET_COLUMN_HINTS.items():
            if hint in name:
                return offset, f"the attribute {original!r} names {OFFSET_DATUMS[offset]}"
    if "adcode" in names and ("center" in names or "centroid" in names):
        return "GCJ02", "the attributes adcode/center/centroid are the layout of DataV (阿里云) boundaries"
    if implied:
        for column in SOURCE_COLUMNS:
            if column in names:
                for value in values(names[column]):
                    for hint, offset in OFFSET_VALUE_HINTS.items():
                        if hint in value.lower():
                            return offset, f"the attribute {names[column]!r} says {value!r}"
    return None


def refuse_offset_hint(hint: tuple[str, str] | None, source: str) -> None:
    """Raise :class:`WebMapOffsetError` for a hint found by :func:`offset_hint`."""
    if hint is None:
        return
    offset, why = hint
    raise WebMapOffsetError(
        f"{source}: read as WGS 84 longitude/latitude, but {why}: the coordinates are probably "
        f"{OFFSET_DATUMS[offset]}, shifted 100–700 m from WGS 84/CGCS2000. Declare the CRS as {offset} "
        f"(CLI: --crs {offset}) to convert them exactly, or as EPSG:4326 if they really are WGS 84")
