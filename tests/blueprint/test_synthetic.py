"""The synthetic scaled city shared by the benchmarks: shape, determinism, and that it merges cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from bench.synthetic import XMAX, XMIN, YMAX, YMIN, scaled_layers
from blueprint.merge import build_blueprint
from blueprint.precedence import load_precedence
from layers.catalogue import load_catalogue

CAT = load_catalogue()


def test_layers_are_valid_and_zones_tile_the_city() -> None:
    layers, boundary = scaled_layers(2000, seed=3)
    by_kind = {lay.kind: lay for lay in layers}
    assert len(by_kind["permanent_farmland"].frame) == 2000
    assert by_kind["permanent_farmland"].frame["feature_id"].is_unique
    for lay in [*layers, boundary]:
        assert lay.frame.crs.to_epsg() == 4548
        assert shapely.is_valid(lay.frame.geometry.to_numpy()).all()
    zones = np.concatenate([by_kind[k].frame.geometry.to_numpy()
                            for k in ("urban_space", "agricultural_space", "ecological_space")])
    box_area = (XMAX - XMIN) * (YMAX - YMIN)
    assert shapely.area(zones).sum() == pytest.approx(box_area, rel=1e-9)
    assert shapely.area(shapely.union_all(zones)) == pytest.approx(box_area, rel=1e-9)
    farmland = by_kind["permanent_farmland"].frame.geometry.to_numpy()
    assert shapely.area(shapely.union_all(farmland)) == pytest.approx(shapely.area(farmland).sum())


def test_same_seed_same_city() -> None:
    a, _ = scaled_layers(500, seed=7)
    b, _ = scaled_layers(500, seed=7)
    c, _ = scaled_layers(500, seed=8)
    for x, y in zip(a, b, strict=True):
        assert x.frame.geometry.geom_equals_exact(y.frame.geometry, 0).all()
    assert not a[1].frame.geometry.geom_equals_exact(c[1].frame.geometry, 0).all()


def test_the_synthetic_city_merges_with_conflicts_of_every_rule() -> None:
    layers, boundary = scaled_layers(3000, seed=1)
    bp = build_blueprint(layers, catalogue=CAT, precedence=load_precedence(None, CAT), tolerance_m=0.5,
                         version="synthetic", boundary=boundary)
    assert bp.pieces["area_m2"].sum() == pytest.approx((XMAX - XMIN) * (YMAX - YMIN), rel=1e-9)
    assert {"three_lines_exclusive", "line_contradicts_zone"} <= set(bp.conflicts["rule"])
    assert bp.meta["cells"] > 1
