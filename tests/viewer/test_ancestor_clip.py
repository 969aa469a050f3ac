"""Street-zoom tiles clipped from their ancestor's clip draw what a clip of the whole layer draws."""

from __future__ import annotations

import numpy as np
import shapely

from viewer import layer_index
from viewer.layer_index import LayerIndex
from viewer.tilegrid import tile_bounds


def _city() -> np.ndarray:
    """A large ring-shaped zone with many vertices spanning many z14 tiles, a small square, a sliver."""
    x0, y0, x1, y1 = tile_bounds(11, 1710, 850)  # one z11 tile: its z14 tiles are 8 × 8 below it
    angles = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.7
    shell = np.column_stack([cx + r * np.cos(angles) * (1 + 0.05 * np.sin(9 * angles)),
                             cy + r * np.sin(angles)])
    hole = np.column_stack([cx + r / 3 * np.cos(angles[::-1]), cy + r / 3 * np.sin(angles[::-1])])
    return np.array([shapely.Polygon(shell, [hole]), shapely.box(cx, cy, cx + 30, cy + 30),
                     shapely.box(x0 + 5, y0 + 5, x1 - 5, y0 + 5.5)], dtype=object)


def _direct(index: LayerIndex, z: int, x: int, y: int) -> list[tuple[shapely.Geometry, dict]]:
    """The tile as clipped from the whole layer (the path below ANCESTOR_ZOOM)."""
    saved = layer_index.ANCESTOR_ZOOM
    layer_index.ANCESTOR_ZOOM = 99
    try:
        return index.tile(z, x, y)
    finally:
        layer_index.ANCESTOR_ZOOM = saved


def _same(a: list, b: list) -> None:
    assert [p for _, p in a] == [p for _, p in b]
    for (ga, _), (gb, _) in zip(a, b, strict=True):
        assert shapely.equals(ga, gb) or shapely.area(shapely.symmetric_difference(ga, gb)) < 1e-6 * ga.area


def test_ancestor_clip_draws_the_same_features() -> None:
    geoms = _city()
    for markers in (False, True):
        index = LayerIndex(geoms, [{"i": i} for i in range(len(geoms))], markers=markers, exact=True)
        drawn = 0
        for z in (13, 14, 15):
            up = 1 << (z - 11)
            for x in range(1710 * up - 1, 1711 * up + 1):
                for y in range(850 * up - 1, 851 * up + 1):
                    got = index.tile(z, x, y)
                    _same(got, _direct(index, z, x, y))
                    drawn += len(got)
        assert drawn > 100  # the zone is drawn in many tiles (the check above compared something)
        assert index._ancestors  # the ancestors were used and kept
