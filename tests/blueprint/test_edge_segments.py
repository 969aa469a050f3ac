"""The linear edge test reads rings as stored: its segments equal those of the oriented pieces (issue #15)."""

from __future__ import annotations

import numpy as np
import shapely

from blueprint.coverage import GRID_M
from blueprint.merge import _directed_segments, edges_match


def _oriented_segments(geoms: np.ndarray) -> list[tuple[int, int, float]]:
    """The reference: orient every piece (shells CCW, holes CW), then read its ring segments."""
    rings = shapely.get_rings(shapely.get_parts(shapely.orient_polygons(geoms, exterior_cw=False)))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    grid = np.round(coords / GRID_M).astype(np.int64)
    grid -= grid.min(axis=0)
    point = grid[:, 0] * (int(grid[:, 1].max()) + 1) + grid[:, 1]
    same = ring[1:] == ring[:-1]
    step = coords[1:][same] - coords[:-1][same]
    return sorted(zip(point[:-1][same].tolist(), point[1:][same].tolist(),
                      np.hypot(step[:, 0], step[:, 1]).tolist(), strict=True))


def _tiling(wound_wrong: bool) -> np.ndarray:
    """A 3×3 grid of squares, the middle one a hole of a ring piece, some rings wound the wrong way."""
    cells = [shapely.box(x, y, x + 10.0, y + 10.0, ccw=not (wound_wrong and (x + y) % 20 == 0))
             for x in (0.0, 10.0, 20.0) for y in (0.0, 10.0, 20.0) if (x, y) != (10.0, 10.0)]
    inner = shapely.box(12.0, 12.0, 18.0, 18.0, ccw=not wound_wrong)
    frame = shapely.Polygon(shapely.box(10.0, 10.0, 20.0, 20.0, ccw=wound_wrong).exterior.coords,
                            holes=[inner.exterior.coords])
    return np.array([*cells, frame, inner], dtype=object)


def test_segments_match_the_oriented_pieces_whatever_the_winding() -> None:
    for wrong in (False, True):
        geoms = _tiling(wrong)
        start, end, length = _directed_segments(geoms)
        got = sorted(zip(start.tolist(), end.tolist(), length.tolist(), strict=True))
        assert got == _oriented_segments(geoms)


def test_multipolygon_pieces_are_split_into_parts() -> None:
    geoms = _tiling(True)
    merged = np.array([shapely.MultiPolygon([geoms[0], geoms[2]]), *geoms[[1, *range(3, len(geoms))]]],
                      dtype=object)
    start, end, length = _directed_segments(merged)
    got = sorted(zip(start.tolist(), end.tolist(), length.tolist(), strict=True))
    assert got == _oriented_segments(merged)


def test_edge_test_accepts_the_tiling_and_rejects_an_overlap() -> None:
    geoms = _tiling(True)
    assert edges_match(geoms, 120.0)
    overlapping = np.array([*geoms, shapely.box(0.0, 0.0, 10.0, 10.0, ccw=False)], dtype=object)
    assert not edges_match(overlapping, 120.0)


def test_shell_winding_by_shoelace_equals_geos_also_for_slivers() -> None:
    """Holeless pieces are wound by the shoelace sign (GEOS decides where rounding could flip it)."""
    rng = np.random.default_rng(5)
    shells = []
    for i in range(200):
        x, y = 500_000.0 + rng.uniform(0, 1e4), 3_500_000.0 + rng.uniform(0, 1e4)
        w = 10.0 ** rng.uniform(-7, 2)  # down to a sliver 1e-7 m wide at coordinates of 10⁶ m
        ring = [(x, y), (x + 50.0, y + w / 2), (x + 100.0, y), (x + 50.0, y + w)]
        shells.append(shapely.Polygon(ring[::-1] if i % 2 else ring))
    geoms = np.array([*shells, shapely.Polygon()], dtype=object)
    start, end, length = _directed_segments(geoms)
    got = sorted(zip(start.tolist(), end.tolist(), length.tolist(), strict=True))
    assert got == _oriented_segments(geoms[:-1])


def test_seams_on_both_axes_gain_the_vertices_of_the_other_side() -> None:
    """A vertex on a vertical cell line and one on a horizontal line: each neighbour gets it inserted."""
    from blueprint.coverage import stitch_seams

    xs, ys = np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0])
    faces = np.array([
        shapely.Polygon([(0, 0), (10, 0), (10, 5), (10, 10), (0, 10)]),  # has (10, 5) on x = 10
        shapely.box(10, 0, 20, 10),
        shapely.Polygon([(0, 10), (5, 10), (10, 10), (10, 20), (0, 20)]),  # has (5, 10) on y = 10
        shapely.box(10, 10, 20, 20),
    ], dtype=object)
    assert not shapely.coverage_is_valid(faces)
    stitched, changed = stitch_seams(faces, xs, ys)
    assert changed == 2 and shapely.coverage_is_valid(stitched)
    assert shapely.equals(stitched, faces).all()  # the same shapes, only vertices added
