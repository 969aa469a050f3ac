"""checks.areas: plane areas in the working CRS and ellipsoidal areas on the CGCS2000 ellipsoid."""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Geod, Transformer

from layers.crs import CGCS2000, transformer

# CGCS2000 椭球 = GRS80 参数 (a, 1/f); the national land surveys compute 椭球面积 on it.
CGCS2000_A = 6_378_137.0
CGCS2000_INVF = 298.257222101
GEOD = Geod(a=CGCS2000_A, f=1.0 / CGCS2000_INVF)

def reproject(geoms: NDArray[np.object_], source: CRS, target: CRS) -> NDArray[np.object_]:
    """``geoms`` transformed from ``source`` to ``target`` (x = easting / longitude)."""
    tr = transformer(source, target)

    def _apply(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, _apply), dtype=object)


def plane_areas(geoms: NDArray[np.object_]) -> NDArray[np.float64]:
    """Plane areas in the units of the geometries' CRS (m² in the GK working CRS)."""
    return np.asarray(shapely.area(geoms), dtype=np.float64)


def _geodesic_areas(geoms: NDArray[np.object_], tr: Transformer | None) -> NDArray[np.float64]:
    """Ellipsoidal areas of ``geoms``; their ring coordinates are lon/lat, or mapped to lon/lat by ``tr``.

    Transforming the flat coordinate array is point by point what reprojecting the geometries does
    (``reproject``), so the areas are the same to the last bit, without building lon/lat geometries.
    """
    out = np.zeros(len(geoms), dtype=np.float64)
    if len(geoms) == 0:
        return out
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    if len(rings) == 0:
        return out
    # get_rings lists each polygon's exterior first: the first ring of every part is its exterior
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    coords, ring_of_coord = shapely.get_coordinates(rings, return_index=True)
    if tr is None:
        lon, lat = coords[:, 0], coords[:, 1]
    else:
        lon, lat = (np.asarray(v, dtype=np.float64) for v in tr.transform(coords[:, 0], coords[:, 1]))
    bounds = np.searchsorted(ring_of_coord, np.arange(len(rings) + 1)).tolist()
    ring_area = np.empty(len(rings), dtype=np.float64)
    for r in range(len(rings)):
        lo, hi = bounds[r], bounds[r + 1]
        area, _ = GEOD.polygon_area_perimeter(lon[lo:hi], lat[lo:hi])
        ring_area[r] = abs(area)
    signed = np.where(exterior, ring_area, -ring_area)
    np.add.at(out, part_owner[ring_part], signed)
    return out


def ellipsoidal_areas(geoms: NDArray[np.object_], crs: CRS) -> NDArray[np.float64]:
    """Ellipsoidal areas (m²) of ``geoms`` given in ``crs``, via CGCS2000 geographic coordinates."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.float64)
    return _geodesic_areas(geoms, transformer(crs, CGCS2000))
