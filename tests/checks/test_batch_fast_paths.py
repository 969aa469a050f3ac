"""checks.batch_fast on awkward pieces against GEOS, and the batch's sort helpers against their references.

The convex clipping gives per-pair areas without overlap polygons; these must agree with GEOS
``intersection`` + ``checks.areas`` on pieces with holes, several parts, slivers, shared edges, concave
outlines, and on pieces containing, inside, touching or only box-overlapping the parcel.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import shapely
from shapely.affinity import rotate
from shapely.geometry import MultiPolygon, Polygon

from checks import batch_fast
from checks.areas import ellipsoidal_areas
from checks.batch import natural_ranks
from checks.batch_sources import sorted_unique
from checks.engine import Screener
from checks.results import natural_key
from tests.checks.conftest import make_blueprint, rect
from tests.geoms import X0, Y0


def poly(*xy: tuple[float, float], holes: list[list[tuple[float, float]]] | None = None) -> Polygon:
    return Polygon([(X0 + x, Y0 + y) for x, y in xy], [[(X0 + x, Y0 + y) for x, y in h] for h in holes or []])


KIND = ["urban_space"]
AWKWARD = [  # (name, piece): each overlaps some of PARCELS in its own way
    ("hole", poly((0, 0), (100, 0), (100, 100), (0, 100), holes=[[(40, 40), (60, 40), (60, 60), (40, 60)]])),
    ("multipart", MultiPolygon([rect(110, 0, 130, 20), rect(140, 0, 160, 20)])),
    ("sliver", poly((0, 50), (200, 50.001), (0, 50.002))),
    ("shared edge a", rect(20, 100, 60, 140)),
    ("shared edge b", rect(60, 100, 100, 140)),
    ("concave L", poly((0, 150), (80, 150), (80, 160), (10, 160), (10, 200), (0, 200))),
    ("contains parcel", rect(-500, -500, 700, 700)),
    ("inside parcel", rect(45, 45, 46, 46)),
    ("touches an edge", rect(100, 0, 110, 100)),
    ("box overlaps, piece does not", poly((90, 120), (130, 120), (130, 80))),  # of PARCELS[0]
]
PARCELS = [
    rect(10, 10, 100, 100),  # its right edge is the edge the "touches" piece shares
    rotate(rect(30, 30, 170, 120), 27, origin="centroid"),
    poly((5, 5), (190, 20), (60, 190)),  # a triangle
    shapely.Point(X0 + 90, Y0 + 90).buffer(70, quad_segs=2),  # a convex octagon
    rect(45.5, 45.5, 45.6, 45.6),  # inside the small piece: parcel within piece
]


@pytest.fixture(scope="module")
def awkward(rules, catalogue) -> Screener:
    pieces = [(f"P{i:06d}", KIND, geom) for i, (_, geom) in enumerate(AWKWARD)]
    return Screener(make_blueprint(pieces), rules, catalogue)


def all_pairs(screener: Screener, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = screener._tree.query(geoms)
    order = np.lexsort((idx[1], idx[0]))
    return idx[0][order].astype(np.int64), idx[1][order].astype(np.int64)


def test_awkward_pieces_agree_with_geos(awkward):
    geoms = np.asarray(PARCELS, dtype=object)
    parcel, piece = all_pairs(awkward, geoms)
    area, ell = batch_fast.pair_areas(awkward, batch_fast.batch_index(awkward), geoms, parcel, piece)
    inter = shapely.intersection(geoms[parcel], awkward._geoms[piece])
    # atol: the sliver's cut points (lines 1e-5 apart in angle) differ from GEOS's by ~1e-8 m² of area
    np.testing.assert_allclose(area, shapely.area(inter), rtol=1e-9, atol=1e-7)
    # authalic-sphere sums vs Karney's geodesic polygon: < 1e-4 m² apart (bench/README.md, "Batch")
    np.testing.assert_allclose(ell, ellipsoidal_areas(inter, awkward.crs), rtol=1e-7, atol=1e-4)
    names = np.asarray([name for name, _ in AWKWARD])[piece]
    assert area[names == "contains parcel"] == pytest.approx(shapely.area(geoms), rel=1e-12)
    first = parcel == 0
    assert (area[first & (names == "touches an edge")] <= 1e-9).all()
    assert len(area[first & (names == "box overlaps, piece does not")]) == 1
    assert (area[first & (names == "box overlaps, piece does not")] <= 1e-9).all()
    assert (area[names == "sliver"] > 0).any() and (area[names == "hole"] > 0).any()


def test_sorted_unique_is_np_unique():
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 1000):
        values = rng.integers(-50, 50, n)
        assert np.array_equal(sorted_unique(values), np.unique(values))


def test_natural_ranks_fast_path_orders_as_natural_key():
    rng = random.Random(1)
    pool = ["B", "b", "", "P-", "地块", "B0", "a_", "٣x"]  # "٣" is a digit to \d: the slow path takes it
    for _ in range(300):
        names = list(dict.fromkeys(rng.choice(pool) + str(rng.choice([0, 1, 7, 10, 99, 1000, 10 ** 17]))
                                   .rjust(rng.randint(1, 4), "0") for _ in range(rng.randint(1, 60))))
        names += rng.sample(["x1y", "1" * 20, "B07", "B7", "7"], 2)
        names = list(dict.fromkeys(names))
        want = np.empty(len(names), dtype=np.int64)
        order = sorted(range(len(names)), key=lambda i: (natural_key(names[i]), names[i]))
        want[order] = np.arange(len(names))
        assert np.array_equal(natural_ranks(names), want), names
