"""Property tests of the merge on random rectangles: area, no overlap, kinds ⊆ covered_by, conflicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint.merge import build_blueprint
from blueprint.precedence import load_precedence
from layers.catalogue import load_catalogue
from tests.blueprint.scenes import layer, rel_box

CAT = load_catalogue()
PREC = load_precedence(None, CAT)
KINDS = ["ecological_redline", "permanent_farmland", "urban_boundary", "urban_space", "ecological_space",
         "geohazard_zone"]

coord = st.integers(min_value=0, max_value=40).map(lambda v: v * 2.5)
rect = st.tuples(coord, coord, st.integers(1, 16).map(lambda v: v * 2.5),
                 st.integers(1, 16).map(lambda v: v * 2.5)).map(lambda t: rel_box(t[0], t[1], t[0] + t[2],
                                                                                  t[1] + t[3]))
layers_st = st.lists(st.tuples(st.sampled_from(KINDS), st.lists(rect, min_size=1, max_size=4)),
                     min_size=1, max_size=4)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _layers(spec: list[tuple[str, list]]) -> list:
    return [layer(kind, geoms, [f"{i}-{j}" for j in range(len(geoms))], name=f"L{i}")
            for i, (kind, geoms) in enumerate(spec)]


@SETTINGS
@given(spec=layers_st, cell=st.sampled_from([None, 13.0, 31.0]))
def test_partition_covers_the_union_without_overlap(spec: list, cell: float | None) -> None:
    lays = _layers(spec)
    bp = build_blueprint(lays, catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="p", cell_size_m=cell)
    geoms = bp.pieces.geometry.to_numpy()
    union = shapely.union_all(np.concatenate([lay.frame.geometry.to_numpy() for lay in lays]))
    assert bp.pieces["area_m2"].sum() == pytest.approx(union.area, rel=1e-9)
    assert shapely.coverage_is_valid(geoms)
    assert shapely.area(shapely.union_all(geoms)) == pytest.approx(union.area, rel=1e-9)
    for kinds, covered in zip(bp.pieces["kinds"], bp.pieces["covered_by"], strict=True):
        assert set(json.loads(kinds)) <= set(json.loads(covered))


@SETTINGS
@given(spec=layers_st)
def test_every_exclusive_overlap_is_a_conflict(spec: list) -> None:
    """Conflict area per kind pair = area where both kinds' layers overlap (tolerance 0)."""
    lays = _layers(spec)
    bp = build_blueprint(lays, catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="p")
    by_kind: dict[str, list] = {}
    for lay in lays:
        by_kind.setdefault(lay.kind, []).extend(lay.frame.geometry)
    for a in by_kind:
        for b in by_kind:
            found = PREC.conflict(a, b)
            if found is None or found[0] != a:
                continue
            expected = shapely.intersection(shapely.union_all(by_kind[a]), shapely.union_all(by_kind[b])).area
            got = bp.conflicts.loc[(bp.conflicts.kind_a == a) & (bp.conflicts.kind_b == b), "area_m2"].sum()
            assert got == pytest.approx(expected, abs=1e-6)


@SETTINGS
@given(spec=layers_st)
def test_inside_a_boundary_the_pieces_fill_it(spec: list) -> None:
    lays = _layers(spec)
    boundary = layer("city_boundary", [rel_box(-5, -5, 150, 150)], name="XZQ")
    bp = build_blueprint(lays, catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="p",
                         boundary=boundary)
    assert bp.pieces["area_m2"].sum() == pytest.approx(155.0 * 155.0, rel=1e-9)
    planned = bp.pieces.loc[bp.pieces.kind != "unplanned"]
    union = shapely.union_all(np.concatenate([lay.frame.geometry.to_numpy() for lay in lays]))
    assert planned["area_m2"].sum() == pytest.approx(union.area, rel=1e-9)
    assert (bp.pieces.loc[bp.pieces.kind == "unplanned", "covered_by"] == "[]").all()
