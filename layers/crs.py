"""layers.crs: the one place coordinate reference systems are decided."""

from __future__ import annotations

import geopandas as gpd
from pyproj import CRS

from layers.errors import CRSConflictError, CRSError, CRSMismatchError, CRSMissingError

CGCS2000 = CRS.from_epsg(4490)  # geographic, lon/lat on the CGCS2000 ellipsoid
OUTPUT_CRS = CRS.from_epsg(4326)  # RFC 7946 GeoJSON, applied at the edge only
DEFAULT_WORK_EPSG = 4548  # CGCS2000 / 3-degree Gauss-Kruger CM 117E, no zone prefix (Tongling)


def parse_crs(value: str | int | CRS) -> CRS:
    """A CRS from 'EPSG:4548', 4548, a WKT or a pyproj CRS; a clear error otherwise."""
    try:
        return CRS.from_user_input(value)
    except Exception as exc:
        raise CRSError(f"not a coordinate reference system: {value!r}") from exc


def require_projected(crs: CRS) -> CRS:
    """The working CRS must be projected so areas and tolerances are in metres."""
    if not crs.is_projected:
        raise CRSError(f"working CRS must be projected (metres), got {crs.to_string()}")
    return crs


def crs_label(crs: CRS | None) -> str:
    """'EPSG:4548' where an EPSG code is known, else the CRS name."""
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def to_work_crs(frame: gpd.GeoDataFrame, work_crs: CRS, *, declared: CRS | None = None,
                source: str = "layer") -> gpd.GeoDataFrame:
    """Return ``frame`` reprojected into ``work_crs``.

    ``declared`` labels a frame that arrived without a CRS (set, not transform).
    A frame whose own CRS disagrees with ``declared`` is rejected.
    """
    require_projected(work_crs)
    if frame.crs is None:
        if declared is None:
            raise CRSMissingError(f"{source}: has no CRS and none was declared (pass --crs EPSG:N)")
        frame = frame.set_crs(declared)
    elif declared is not None and not CRS.from_user_input(frame.crs).equals(declared, ignore_axis_order=True):
        raise CRSConflictError(
            f"{source}: the file says {crs_label(CRS.from_user_input(frame.crs))}, "
            f"the caller declared {crs_label(declared)}"
        )
    if CRS.from_user_input(frame.crs).equals(work_crs, ignore_axis_order=True):
        return frame.set_crs(work_crs, allow_override=True)
    return frame.to_crs(work_crs)


def assert_same_crs(a: gpd.GeoDataFrame | gpd.GeoSeries, b: gpd.GeoDataFrame | gpd.GeoSeries,
                    what: str = "frames") -> None:
    """Raise :class:`CRSMismatchError` unless both carry the same CRS. Never warns."""
    ca, cb = a.crs, b.crs
    if ca is None or cb is None or not CRS.from_user_input(ca).equals(cb, ignore_axis_order=True):
        raise CRSMismatchError(f"CRS mismatch between {what}: {crs_label(ca)} vs {crs_label(cb)}")


def to_output(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> gpd.GeoDataFrame | gpd.GeoSeries:
    """Reproject to EPSG:4326 for GeoJSON output (the edge only)."""
    return frame.to_crs(OUTPUT_CRS)
