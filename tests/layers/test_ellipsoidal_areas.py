"""layers.areas.zone_and_ellipsoidal_areas: the conformal-scale ellipsoidal area against pyproj.Geod."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS, Transformer

from layers.areas import ellipsoidal_areas, plane_zones, zone_and_ellipsoidal_areas

STORAGE = CRS.from_epsg(4548)  # 3° GK CM 117°E


def _squares(points: list[tuple[float, float]], side: float) -> np.ndarray:
    tr = Transformer.from_crs(4490, STORAGE, always_xy=True)
    out = []
    for lon, lat in points:
        x, y = tr.transform(lon, lat)
        out.append(shapely.box(x, y, x + side, y + side))
    return np.asarray(out, dtype=object)


# pieces at the edges of zones 38, 39 and 40 (own-zone GK +0.05 % there), at their meridians and a holed one
EDGES = [(113.0, 30.0), (115.45, 31.0), (115.55, 31.0), (118.45, 32.5), (121.4, 33.0), (114.0, 31.5),
         (117.0, 29.5), (120.0, 34.0)]


def test_ellipsoidal_areas_match_geod_in_three_zones() -> None:
    geoms = _squares(EDGES, 2000.0)
    geoms[0] = shapely.difference(geoms[0], shapely.buffer(shapely.centroid(geoms[0]), 300.0))
    zones = plane_zones(geoms, STORAGE)
    assert set(zones.zone.tolist()) == {38, 39, 40}
    plane, ellipsoidal = zone_and_ellipsoidal_areas(geoms, STORAGE, zones)
    geod = ellipsoidal_areas(geoms, STORAGE)
    assert np.abs(ellipsoidal / geod - 1).max() < 1e-6
    # the own-zone plane areas are what the column corrects: up to +0.05 % at a zone edge
    assert (plane / geod - 1).max() > 4e-4
    assert abs(ellipsoidal.sum() / geod.sum() - 1) < 1e-7


def test_a_large_piece_stays_within_the_centroid_bound() -> None:
    # a 40 km square 60 km off the meridian against the Geod areas of its 1 km tiles
    piece = _squares([(116.4, 31.0)], 40_000.0)
    x0, y0, _x1, _y1 = piece[0].bounds
    tiles = np.asarray([shapely.box(x0 + i * 1000, y0 + j * 1000, x0 + (i + 1) * 1000, y0 + (j + 1) * 1000)
                        for i in range(40) for j in range(40)], dtype=object)
    _plane, ellipsoidal = zone_and_ellipsoidal_areas(piece, STORAGE, plane_zones(piece, STORAGE))
    tiled = ellipsoidal_areas(tiles, STORAGE).sum()
    # the scale taken at the centroid rather than integrated: off by about width² / (12 R²) = 3.3e-6
    assert abs(ellipsoidal[0] / tiled - 1) < 40_000.0**2 / (12 * 6_372_000.0**2) * 1.1


def test_a_crs_that_is_not_gauss_kruger_uses_geod() -> None:
    geoms = _squares([(117.2, 31.0)], 1000.0)
    lonlat = np.asarray(shapely.transform(geoms, lambda xy: np.column_stack(
        Transformer.from_crs(STORAGE, 4490, always_xy=True).transform(xy[:, 0], xy[:, 1]))), dtype=object)
    crs = CRS.from_epsg(4490)
    _plane, ellipsoidal = zone_and_ellipsoidal_areas(lonlat, crs, plane_zones(lonlat, crs))
    assert ellipsoidal[0] == ellipsoidal_areas(lonlat, crs)[0]
