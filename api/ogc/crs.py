"""api.ogc.crs: the CRSs offered by OGC API – Features Part 2, their URIs, axis order, bbox and output."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from api.errors import InvalidParameterError
from layers.crs import CGCS2000, OUTPUT_CRS, pipeline_transformer, to_output, transformer

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
_EPSG = re.compile(
    r"^(?:https?://www\.opengis\.net/def/crs/EPSG/0/|EPSG:|urn:ogc:def:crs:EPSG:[^:]*:)(\d{4,6})$", re.I
)
_CRS84 = re.compile(
    r"^(?:https?://www\.opengis\.net/def/crs/OGC/1\.3/|OGC:|urn:ogc:def:crs:OGC:1\.3:)?CRS84$", re.I
)


@dataclass(frozen=True)
class OfferedCrs:
    """A CRS the API serves: its URI, the pyproj CRS, and whether its first axis is northing/latitude."""

    uri: str
    crs: CRS
    lat_first: bool

    @property
    def is_crs84(self) -> bool:
        return self.uri == CRS84

    @property
    def header(self) -> str:
        """The ``Content-Crs`` header value."""
        return f"<{self.uri}>"


def offered(work_crs: CRS) -> list[OfferedCrs]:
    """CRS84 (the default), CGCS2000 geographic (EPSG:4490), WGS 84 (EPSG:4326) and the working GK CRS."""
    out = [OfferedCrs(CRS84, OUTPUT_CRS, lat_first=False)]
    for crs in (CGCS2000, OUTPUT_CRS, work_crs):
        epsg = crs.to_epsg()
        if epsg is not None and all(o.uri != EPSG_URI.format(epsg) for o in out):
            out.append(OfferedCrs(EPSG_URI.format(epsg), crs, lat_first=_north_first(crs)))
    return out


def storage_uri(work_crs: CRS) -> str:
    epsg = work_crs.to_epsg()
    return EPSG_URI.format(epsg) if epsg is not None else CRS84


def _north_first(crs: CRS) -> bool:
    axes = crs.axis_info
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


def resolve(value: str | None, work_crs: CRS, *, parameter: str) -> OfferedCrs:
    """The offered CRS named by a ``crs``/``bbox-crs``/``filter-crs`` value (URI, ``EPSG:n`` or URN);
    CRS84 when absent."""
    choices = offered(work_crs)
    if value is None or not value.strip():
        return choices[0]
    text = value.strip().removeprefix("[").removesuffix("]")
    if _CRS84.match(text):
        return choices[0]
    match = _EPSG.match(text)
    if match is not None:
        uri = EPSG_URI.format(int(match.group(1)))
        for choice in choices:
            if choice.uri == uri:
                return choice
    raise InvalidParameterError(
        f"{parameter}={value!r} is not offered; use one of {', '.join(c.uri for c in choices)}"
    )


def to_work(geom: BaseGeometry, source: OfferedCrs, work_crs: CRS) -> BaseGeometry:
    """A geometry given in ``source`` (in that CRS's axis order) as a geometry in the working CRS."""
    move = pipeline_transformer(source.crs, work_crs)

    def coords(xy: np.ndarray) -> np.ndarray:
        if source.lat_first:
            xy = xy[:, ::-1]
        x, y = move.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])

    moved = shapely.transform(geom, coords)
    if not np.isfinite(shapely.get_coordinates(moved)).all():
        raise InvalidParameterError(f"coordinates cannot be expressed in {work_crs.name}")
    return moved


def parse_bbox(text: str, source: OfferedCrs, work_crs: CRS) -> BaseGeometry:
    """``bbox`` (four or six numbers, in the axis order of ``bbox-crs``) as a polygon in the working CRS."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidParameterError(f"bbox must be four numbers, got {text!r}") from None
    if len(values) == 6:  # minx,miny,minz,maxx,maxy,maxz
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InvalidParameterError(f"bbox must be four numbers, got {text!r}")
    if source.lat_first:
        values = [values[1], values[0], values[3], values[2]]
    west, south, east, north = values
    if source.crs.is_geographic:
        west, east = _geographic_span(west, south, east, north)
    elif west > east or south > north:
        raise InvalidParameterError("bbox: the lower corner must come before the upper corner")
    try:
        bounds = transformer(source.crs, work_crs).transform_bounds(west, south, east, north, densify_pts=21)
    except Exception:
        raise InvalidParameterError("bbox cannot be expressed in the working CRS") from None
    if not all(np.isfinite(bounds)):
        raise InvalidParameterError("bbox cannot be expressed in the working CRS")
    return box(*bounds)


def _geographic_span(west: float, south: float, east: float, north: float) -> tuple[float, float]:
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidParameterError("bbox is outside the longitude/latitude range")
    if west > east:  # crossing the antimeridian: nowhere near any Chinese city
        return -180.0, 180.0
    return west, east


def reproject(frame: gpd.GeoDataFrame, target: OfferedCrs) -> list[dict[str, Any] | None]:
    """The geometries of ``frame`` (working CRS) as GeoJSON geometry objects in ``target``'s axis order.

    CRS84 goes through :func:`layers.crs.to_output`, the GeoJSON edge (RFC 7946). Other CRSs are
    reprojected the same way, exterior rings counter-clockwise in east/north, then put in the axis
    order the CRS defines (OGC API – Features Part 2: EPSG:4490 and EPSG:4548 are north first).
    """
    if target.is_crs84:
        geoms = to_output(frame.geometry).to_numpy()
    else:
        geoms = shapely.orient_polygons(frame.geometry.to_crs(target.crs).to_numpy(), exterior_cw=False)
        if target.lat_first:
            geoms = shapely.transform(geoms, lambda c: c[:, ::-1])
    return [shapely.geometry.mapping(g) if g is not None else None for g in geoms]
