"""checks.areas: the area helpers the checks use, now kept in layers.areas (the blueprint needs them too)."""

from layers.areas import (
    CGCS2000_A,
    CGCS2000_INVF,
    GEOD,
    SURELY_INSIDE_M,
    PlaneZones,
    ellipsoidal_areas,
    plane_areas,
    plane_zones,
    reproject,
    reproject_with,
    zone_areas,
)
from layers.crs import transformer

__all__ = ["CGCS2000_A", "CGCS2000_INVF", "GEOD", "SURELY_INSIDE_M", "PlaneZones", "ellipsoidal_areas",
           "plane_areas", "plane_zones", "reproject", "reproject_with", "transformer", "zone_areas"]
