"""Zone-line pieces decided together (vectorised ``_zone_parts``) equal one-by-one decisions (#15)."""

from __future__ import annotations

import numpy as np
import shapely

from layers.areas import _geodesic_areas, _zone_parts, plane_zones, reproject_with
from layers.crs import CGCS2000, transformer, zone3_crs, zone3_of_longitude


def _one_by_one(geom: object, tr: object, low: int, high: int) -> dict[int, float]:
    """The reference: the piece alone, reprojected, checked, intersected with each zone's strip."""
    lonlat = reproject_with(np.asarray([geom], dtype=object), tr)[0]
    lons = shapely.get_coordinates(lonlat)[:, 0]
    one = zone3_of_longitude(np.array([lons.min(), lons.max()])) if len(lons) else None
    if one is not None and one[0] == one[1] and low <= one[0] <= high:
        return {int(one[0]): 1.0} if shapely.area(geom) > 0 else {}
    if not lonlat.is_valid:
        lonlat = shapely.make_valid(lonlat)
    parts: dict[int, float] = {}
    for z in range(low, high + 1):
        part = shapely.intersection(lonlat, shapely.box(3 * z - 1.5, -90.0, 3 * z + 1.5, 90.0))
        area = float(_geodesic_areas(np.asarray([part], dtype=object), None)[0]) if not part.is_empty else 0.0
        if area > 0:
            parts[z] = area
    return parts


def _pieces() -> np.ndarray:
    rng = np.random.default_rng(7)
    n = 600
    x, y = 500_000 + rng.uniform(-300_000, 300_000, n), rng.uniform(3.5e6, 4.5e6, n)
    w = rng.uniform(10.0, 20_000.0, n)
    geoms = shapely.box(x, y, x + w, y + w * rng.uniform(0.2, 3.0, n))
    for k in range(0, n, 7):  # some with a hole
        x0, y0, _, _ = geoms[k].bounds
        geoms[k] = shapely.difference(geoms[k], shapely.box(x0 + w[k] * .2, y0 + w[k] * .2,
                                                            x0 + w[k] * .4, y0 + w[k] * .4))
    return np.asarray(geoms, dtype=object)


def test_vectorised_zone_parts_equal_one_by_one() -> None:
    crs = zone3_crs(39)
    geoms = _pieces()
    tr = transformer(crs, CGCS2000)
    b = shapely.bounds(geoms)
    lon = np.asarray(tr.transform(np.r_[b[:, 0], b[:, 2]], np.r_[b[:, 1], b[:, 3]])[0]).reshape(2, -1)
    low, high = zone3_of_longitude(lon.min(axis=0)), zone3_of_longitude(lon.max(axis=0))
    high[::5] += 1  # boxes reaching a zone they have no vertex in: the one-zone shortcut
    got = _zone_parts(geoms, tr, low, high)
    want = [_one_by_one(g, tr, int(lo), int(hi)) for g, lo, hi in zip(geoms, low, high, strict=True)]
    assert got == want
    assert sum(len(p) > 1 for p in want) > 10  # real crossings were compared, not only shortcuts


def test_crossing_parcels_report_their_area_in_each_zone() -> None:
    crs = zone3_crs(39)
    geoms = _pieces()
    zones = plane_zones(geoms, crs)
    assert len(zones.crossing) > 10
    for i, areas in zones.crossing.items():
        for z, a in areas.items():
            own = shapely.area(geoms[i]) if z == 39 else \
                shapely.area(reproject_with(geoms[i:i + 1], transformer(crs, zone3_crs(z))))[0]
            assert a == float(own)
