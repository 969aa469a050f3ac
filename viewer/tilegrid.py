"""viewer.tilegrid: the XYZ web-mercator tile grid (Leaflet's scheme); reprojection is layers.crs's."""

from __future__ import annotations

import math

from pyproj import CRS

# Web-mercator tiling (XYZ scheme, y grows southwards), as Leaflet requests it.
EARTH_HALF = 20037508.342789244  # half the EPSG:3857 world width in metres
TILE_PX = 256
MAX_ZOOM = 22
WEB_MERCATOR = CRS.from_epsg(3857)
LONLAT = CRS.from_epsg(4326)


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


def ground_pixel(z: int, lat: float) -> float:
    """Metres on the ground (a conformal working CRS) per screen pixel at zoom ``z`` and latitude ``lat``."""
    return pixel_size(z) * math.cos(math.radians(lat))
