"""layers.areas: plane areas (working CRS, or each piece's own 3° zone) and ellipsoidal areas on CGCS2000."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Geod, Transformer

from layers.crs import (
    CGCS2000,
    ZONE3_RANGE,
    crs_label,
    gauss_kruger,
    pipeline_transformer,
    reproject_array,
    zone3_crs,
    zone3_of_crs,
    zone3_of_longitude,
)

# CGCS2000 椭球 = GRS80 参数 (a, 1/f); the national land surveys compute 椭球面积 on it.
CGCS2000_A = 6_378_137.0
CGCS2000_INVF = 298.257222101
GEOD = Geod(a=CGCS2000_A, f=1.0 / CGCS2000_INVF)


def reproject(geoms: NDArray[np.object_], source: CRS, target: CRS) -> NDArray[np.object_]:
    """``geoms`` transformed from ``source`` to ``target`` (x = easting / longitude): the one array
    reprojection, :func:`layers.crs.reproject_array`."""
    return reproject_array(geoms, source, target)


def reproject_with(geoms: NDArray[np.object_], tr: Transformer) -> NDArray[np.object_]:
    """``geoms`` transformed point by point with ``tr`` (always_xy)."""

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
        lon, lat = tr.transform(coords[:, 0], coords[:, 1])
    # C-contiguous float64, as Geod.polygon_area_perimeter's own copy makes them: its C routine is called
    # directly on slices (the public method's per-call buffer copies were ~3/4 of this loop)
    lon, lat = np.ascontiguousarray(lon, dtype=np.float64), np.ascontiguousarray(lat, dtype=np.float64)
    bounds = np.searchsorted(ring_of_coord, np.arange(len(rings) + 1)).tolist()
    ring_area = np.empty(len(rings), dtype=np.float64)
    polygon_area = GEOD._polygon_area_perimeter
    for r in range(len(rings)):
        lo, hi = bounds[r], bounds[r + 1]
        area, _ = polygon_area(lon[lo:hi], lat[lo:hi], radians=False)
        ring_area[r] = abs(area)
    signed = np.where(exterior, ring_area, -ring_area)
    np.add.at(out, part_owner[ring_part], signed)
    return out


def ellipsoidal_areas(geoms: NDArray[np.object_], crs: CRS) -> NDArray[np.float64]:
    """Ellipsoidal areas (m²) of ``geoms`` given in ``crs``, via CGCS2000 geographic coordinates."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.float64)
    return _geodesic_areas(geoms, pipeline_transformer(crs, CGCS2000))


# ---------------------------------------------------------------- plane areas in each parcel's own zone


@dataclass(frozen=True)
class PlaneZones:
    """The 3-degree GK zone each parcel's plane areas are computed in, and why.

    Plane areas are only right in a parcel's own zone (a parcel 3° off the working CRS's meridian is
    +0.2 %, 9° off +3.5 % too large there). Parcels of the working CRS's zone keep its areas bit for bit.
    ``work_zone`` is None when the working CRS is not Gauss-Krüger: then every area stays in it.
    """

    work_zone: int | None
    zone: NDArray[np.int64]  # per parcel (the working zone where unchanged)
    chosen_by: tuple[str, ...]  # per parcel: "centroid", "declared" (by its 部标 file) or "larger_part"
    crossing: dict[int, dict[int, float]]  # parcel → {zone: its plane area in that zone}, if it crosses

    @property
    def foreign(self) -> NDArray[np.bool_]:
        """Parcels whose own zone is not the working CRS's: their areas are recomputed there."""
        if self.work_zone is None:
            return np.zeros(len(self.zone), dtype=bool)
        return np.asarray(self.zone != self.work_zone, dtype=bool)

    def describe(self, i: int, work_label: str) -> dict[str, Any]:
        """The result's ``plane_zone`` entry of parcel ``i``."""
        if self.work_zone is None:
            return {"crs": work_label, "zone": None, "chosen_by": "working_crs"}
        zone = int(self.zone[i])
        crs = work_label if zone == self.work_zone else crs_label(zone3_crs(zone))
        entry: dict[str, Any] = {"zone": zone, "central_meridian": 3 * zone, "crs": crs,
                                 "chosen_by": self.chosen_by[i]}
        if i in self.crossing:
            entry["crosses_zone_line"] = {str(z): round(a, 4) for z, a in sorted(self.crossing[i].items())}
        return entry


def plane_zones(geoms: NDArray[np.object_], crs: CRS, declared_zone: int | None = None) -> PlaneZones:
    """Each parcel's own 3-degree zone: its centroid's, the zone of its larger part when it crosses a
    zone line, or ``declared_zone`` (the zone its 部标 file declares) when given."""
    n = len(geoms)
    work, false_easting = _work_zone(crs)
    if work is None or n == 0:
        return PlaneZones(work, np.full(n, work or 0, dtype=np.int64), ("centroid",) * n, {})
    b = shapely.bounds(geoms)
    zone = np.full(n, work, dtype=np.int64)
    chosen = ["centroid"] * n
    crossing: dict[int, dict[int, float]] = {}
    # only parcels not surely inside the working zone need their corners and centroid in lon/lat
    unsure = (np.flatnonzero(~np.all(np.abs(b[:, [0, 2]] - false_easting) < SURELY_INSIDE_M, axis=1))
              if declared_zone is None else np.arange(n))
    if len(unsure) == 0:
        return PlaneZones(work, zone, tuple(chosen), crossing)
    tr = pipeline_transformer(crs, CGCS2000)
    bu, m = b[unsure], len(unsure)
    centre = shapely.get_coordinates(shapely.centroid(geoms[unsure]))
    xs = np.concatenate([bu[:, 0], bu[:, 2], bu[:, 0], bu[:, 2], centre[:, 0]])
    ys = np.concatenate([bu[:, 1], bu[:, 1], bu[:, 3], bu[:, 3], centre[:, 1]])
    lon = np.asarray(tr.transform(xs, ys)[0], dtype=np.float64).reshape(5, m)
    zone[unsure] = zone3_of_longitude(lon[4])
    low, high = zone3_of_longitude(lon[:4].min(axis=0)), zone3_of_longitude(lon[:4].max(axis=0))
    across = np.flatnonzero(low != high)
    found = _zone_parts(geoms[unsure[across]], tr, low[across], high[across])
    for j, parts in zip(across.tolist(), found, strict=True):
        i = int(unsure[j])
        if len(parts) > 1:
            zone[i] = max(parts, key=lambda z: (parts[z], -abs(z - work)))
            chosen[i] = "larger_part"
            crossing[i] = dict.fromkeys(parts, 0.0)
        elif parts:
            zone[i] = next(iter(parts))
    _crossing_areas(geoms, crs, work, crossing)
    if declared_zone is not None and ZONE3_RANGE[0] <= declared_zone <= ZONE3_RANGE[1]:
        zone[:] = declared_zone
        chosen = ["declared"] * n
    outside = (zone < ZONE3_RANGE[0]) | (zone > ZONE3_RANGE[1])
    zone[outside] = work  # beyond China's zones: keep the working CRS
    return PlaneZones(work, zone, tuple(chosen), crossing)


def _crossing_areas(geoms: NDArray[np.object_], crs: CRS, work: int,
                   crossing: dict[int, dict[int, float]]) -> None:
    """Fill each crossing parcel's {zone: plane area there}: one reprojection per zone for all of them."""
    for z in sorted({z for parts in crossing.values() for z in parts}):
        rows = [i for i, parts in crossing.items() if z in parts]
        if z == work:
            area = shapely.area(geoms[rows])
        else:
            area = shapely.area(reproject(geoms[rows], crs, zone3_crs(z)))
        for i, a in zip(rows, area.tolist(), strict=True):
            crossing[i][z] = float(a)


# eastings this close to the central meridian are inside its 3° zone at every latitude up to 54°N
# (1.5° of longitude is ≥ 98 km there): the common case needs no reprojection to decide the zone
SURELY_INSIDE_M = 95_000.0
_work_zones: dict[str, tuple[int | None, float]] = {}


def _work_zone(crs: CRS) -> tuple[int | None, float]:
    """(3° zone, false easting) of the working CRS, cached by its definition (parsing costs µs)."""
    found = _work_zones.get(crs.srs)
    if found is None:
        gk = gauss_kruger(crs)
        found = (zone3_of_crs(crs), gk.false_easting if gk is not None else 0.0)
        if crs.srs:
            _work_zones[crs.srs] = found
    return found


def _zone_parts(geoms: NDArray[np.object_], tr: Transformer, low: NDArray[np.int64],
                high: NDArray[np.int64]) -> list[dict[int, float]]:
    """For each of ``geoms``: the ellipsoidal area of its part in each zone from ``low`` to ``high``
    (non-empty parts only). Vectorised over the pieces (one reprojection, one GEOS call per step): the
    same operations piece by piece, so the same numbers, without ~1 ms of Python per piece."""
    found: list[dict[int, float]] = [{} for _ in range(len(geoms))]
    if len(geoms) == 0:
        return found
    lonlat = reproject_with(geoms, tr)
    n_coords = shapely.get_num_coordinates(lonlat)
    lons = shapely.get_coordinates(lonlat)[:, 0]
    starts = np.cumsum(n_coords) - n_coords
    has = n_coords > 0
    one_lo = np.zeros(len(geoms), dtype=np.int64)
    one_hi = np.ones(len(geoms), dtype=np.int64)  # no coordinates: not "one zone"
    if has.any():
        one_lo[has] = zone3_of_longitude(np.minimum.reduceat(lons, starts[has]))
        one_hi[has] = zone3_of_longitude(np.maximum.reduceat(lons, starts[has]))
    one = has & (one_lo == one_hi) & (low <= one_lo) & (one_lo <= high)
    # every vertex in one zone (its box only reached across the line): the polygon, straight between
    # its vertices in lon/lat here, lies in that zone; the intersections below would find just it
    positive = shapely.area(geoms) > 0
    for k in np.flatnonzero(one & positive).tolist():
        found[k] = {int(one_lo[k]): 1.0}
    rest = np.flatnonzero(~one)
    if len(rest) == 0:
        return found
    shapes = lonlat[rest]
    invalid = ~shapely.is_valid(shapes)  # a blueprint piece with many holes may touch itself once bent
    if invalid.any():
        shapes[invalid] = shapely.make_valid(shapes[invalid])
    span = (high[rest] - low[rest] + 1).astype(np.int64)
    which = np.repeat(np.arange(len(rest)), span)
    zone = low[rest][which] + (np.arange(len(which)) - np.repeat(np.cumsum(span) - span, span))
    parts = shapely.intersection(shapes[which], shapely.box(3 * zone - 1.5, -90.0, 3 * zone + 1.5, 90.0))
    area = np.zeros(len(parts), dtype=np.float64)
    filled = ~shapely.is_empty(parts)
    area[filled] = _geodesic_areas(parts[filled], None)
    for w, z, a in zip(which.tolist(), zone.tolist(), area.tolist(), strict=True):
        if a > 0:
            found[int(rest[w])][int(z)] = a
    return found


def zone_areas(geoms: NDArray[np.object_], crs: CRS, zones: PlaneZones,
               owner: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
    """Plane areas of ``geoms`` (in ``crs``), each in the zone of its parcel (``owner[i]``, or ``i``):
    ``shapely.area`` unchanged for parcels of the working zone, recomputed in their zone otherwise."""
    return _zone_areas(geoms, crs, zones, owner)[0]


def zone_and_ellipsoidal_areas(geoms: NDArray[np.object_], crs: CRS,
                               zones: PlaneZones) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each piece's plane area in its own 3° zone (as :func:`zone_areas`) and its ellipsoidal area.

    A Gauss-Krüger plane is conformal: its area scale is ``k²`` with ``k = cosh(x / R)`` at ``x`` metres
    east of the central meridian (R² = ρν, the Gaussian radius of the CGCS2000 ellipsoid at the piece's
    latitude). The ellipsoidal area is the own-zone area divided by ``k²`` at the piece's centroid: vectorised
    and far cheaper than ``pyproj.Geod`` ring by ring (:func:`ellipsoidal_areas`; ~80 µs a piece). Taking
    ``k`` at the centroid rather than integrating it over the piece is off by about width² / (12 R²): 5e-8
    for a piece 5 km wide, 3.3e-6 for one 40 km wide. Not a Gauss-Krüger CRS: ``Geod`` for every piece.
    """
    plane, centre_x, northing = _zone_areas(geoms, crs, zones, None, centres=True)
    if zones.work_zone is None:
        return plane, ellipsoidal_areas(geoms, crs)
    r2 = _gaussian_radius2(northing)
    return plane, plane / np.cosh(centre_x / np.sqrt(r2)) ** 2


_E2 = (2.0 - 1.0 / CGCS2000_INVF) / CGCS2000_INVF  # first eccentricity squared


def _gaussian_radius2(northing: NDArray[np.float64]) -> NDArray[np.float64]:
    """ρν (m²) at the footpoint latitude of a GK ``northing`` on CGCS2000 (the latitude matters to ~1e-9)."""
    e2 = _E2
    mu = northing / (CGCS2000_A * (1.0 - e2 / 4.0 - 3.0 * e2 * e2 / 64.0))
    e1 = (1.0 - np.sqrt(1.0 - e2)) / (1.0 + np.sqrt(1.0 - e2))
    phi = (mu + (1.5 * e1 - 27.0 * e1**3 / 32.0) * np.sin(2.0 * mu)
           + (21.0 * e1 * e1 / 16.0) * np.sin(4.0 * mu))
    w2 = 1.0 - e2 * np.sin(phi) ** 2
    return np.asarray(CGCS2000_A**2 * (1.0 - e2) / w2**2, dtype=np.float64)


Floats = NDArray[np.float64]


def _zone_areas(geoms: NDArray[np.object_], crs: CRS, zones: PlaneZones, owner: NDArray[np.int64] | None,
                *, centres: bool = False) -> tuple[Floats, Floats, Floats]:
    """Own-zone plane areas and, with ``centres``, each centroid's easting from its zone's central meridian
    and its northing in that zone."""
    area = np.asarray(shapely.area(geoms), dtype=np.float64)
    parcel = np.arange(len(geoms)) if owner is None else owner
    east = np.zeros(len(geoms), dtype=np.float64)
    north = np.zeros(len(geoms), dtype=np.float64)
    if len(geoms) == 0:
        return area, east, north
    foreign = zones.foreign[parcel]
    if centres:
        xy = shapely.get_coordinates(shapely.centroid(geoms[~foreign]))
        east[~foreign], north[~foreign] = xy[:, 0] - _work_zone(crs)[1], xy[:, 1]
    if not foreign.any():
        return area, east, north
    zone_of = zones.zone[parcel]
    for z in np.unique(zone_of[foreign]).tolist():
        rows = np.flatnonzero(foreign & (zone_of == z))
        own = zone3_crs(int(z))
        moved = reproject(geoms[rows], crs, own)
        area[rows] = shapely.area(moved)
        if centres:
            xy = shapely.get_coordinates(shapely.centroid(moved))
            east[rows], north[rows] = xy[:, 0] - _work_zone(own)[1], xy[:, 1]
    return area, east, north
