"""Merge behaviour: provenance, determinism, tolerance, the coverage check and input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from blueprint.coverage import stitch_seams
from blueprint.errors import NoLayersError, PrecedenceError
from blueprint.merge import (
    CoverageCheckError,
    MergeInputError,
    build_blueprint,
    edges_match,
    verify_partition,
)
from blueprint.precedence import Precedence, load_precedence
from layers.catalogue import load_catalogue
from layers.errors import CRSMismatchError
from tests.blueprint.scenes import layer
from tests.geoms import BOW_TIE, SHARED_EDGE_LEFT, SHARED_EDGE_RIGHT, SLIVER, square

CAT = load_catalogue()
PREC = load_precedence(None, CAT)


def _build(layers, **kw):
    kw.setdefault("tolerance_m", 0.5)
    return build_blueprint(layers, catalogue=CAT, precedence=PREC, version="t", **kw)


def _scene():
    farmland = layer("permanent_farmland", [square(0, 0, 50), square(50, 0, 50), square(200, 0, 50)],
                     ["NT-a", "NT-b", "NT-c"], name="农田图层")
    red = layer("ecological_redline", [square(30, 10, 40)], ["HX-9"], name="红线图层")
    hazard = layer("geohazard_zone", [square(0, 0, 260)], ["DZ-1"], name="地灾")
    return [farmland, red, hazard]


def test_sources_name_every_covering_feature_with_layer_file_and_checksum() -> None:
    bp = _build(_scene())
    pt = shapely.Point(square(35, 15, 1).centroid)  # inside HX-9, NT-a and DZ-1
    row = bp.pieces.loc[bp.pieces.contains(pt)].iloc[0]
    sources = json.loads(row["sources"])
    assert {(s["kind"], s["feature_id"]) for s in sources} == {
        ("ecological_redline", "HX-9"), ("permanent_farmland", "NT-a"), ("geohazard_zone", "DZ-1")}
    red = next(s for s in sources if s["kind"] == "ecological_redline")
    assert red == {"kind": "ecological_redline", "layer": "红线图层", "feature_id": "HX-9",
                   "source": "ecological_redline.shp", "checksum": "sha256-ecological_redline"}
    assert row["kind"] == "ecological_redline"
    assert json.loads(row["kinds"]) == ["ecological_redline", "geohazard_zone"]
    assert json.loads(row["covered_by"]) == ["ecological_redline", "permanent_farmland", "geohazard_zone"]


def test_overlays_never_conflict_and_layers_are_recorded() -> None:
    bp = _build(_scene())
    assert set(bp.conflicts["rule"]) == {"three_lines_exclusive"}
    assert "geohazard_zone" not in set(bp.conflicts["kind_a"]) | set(bp.conflicts["kind_b"])
    (conflict,) = bp.conflicts.to_dict("records")  # HX-9 over NT-a and NT-b is one connected area
    assert json.loads(conflict["feature_ids"]) == {"ecological_redline": ["HX-9"],
                                                   "permanent_farmland": ["NT-a", "NT-b"]}
    assert conflict["area_m2"] == pytest.approx(1600.0)
    assert [ref.name for ref in bp.layers] == ["农田图层", "红线图层", "地灾"]
    assert bp.status == "draft" and bp.created_at is not None and bp.created_at.tzinfo is not None
    assert bp.precedence == PREC.order


def test_same_input_gives_identical_pieces_and_ids() -> None:
    a, b = _build(_scene()), _build(_scene())
    assert a.pieces.drop(columns="geometry").equals(b.pieces.drop(columns="geometry"))
    assert all(ga.equals_exact(gb, 0) for ga, gb in zip(a.pieces.geometry, b.pieces.geometry, strict=True))
    assert a.conflicts.drop(columns="geometry").equals(b.conflicts.drop(columns="geometry"))
    assert list(a.pieces["piece_id"]) == [f"P{i:06d}" for i in range(1, len(a.pieces) + 1)]
    assert list(a.pieces["kind"]) == sorted(a.pieces["kind"])  # ordered by kind first


def test_threads_do_not_change_the_result() -> None:
    a = _build(_scene(), cell_size_m=20.0, workers=1)
    b = _build(_scene(), cell_size_m=20.0, workers=2)
    assert a.pieces.drop(columns="geometry").equals(b.pieces.drop(columns="geometry"))


@pytest.mark.parametrize(("tolerance", "absorbed", "conflicts"), [(0.5, 1, 0), (0.1, 0, 1)])
def test_sliver_absorbed_under_the_tolerance_else_a_conflict(tolerance: float, absorbed: int,
                                                             conflicts: int) -> None:
    red = layer("ecological_redline", [SHARED_EDGE_LEFT.union(SLIVER)])  # reaches 0.2 m into the farmland
    farm = layer("permanent_farmland", [SHARED_EDGE_RIGHT])
    bp = _build([red, farm], tolerance_m=tolerance)
    assert len(bp.absorbed) == absorbed and len(bp.conflicts) == conflicts
    assert bp.pieces["area_m2"].sum() == pytest.approx(200 * 100)
    if absorbed:
        assert bp.absorbed[0]["area_m2"] == pytest.approx(20.0)
        assert bp.absorbed[0]["was"] == ["ecological_redline", "permanent_farmland"]
    else:
        assert bp.conflicts["area_m2"].iloc[0] == pytest.approx(20.0)


def test_a_narrow_strip_along_a_cell_line_is_not_mistaken_for_a_sliver() -> None:
    """Cell lines cut pieces, never create slivers: nothing is absorbed with or without a grid."""
    layers = [layer("permanent_farmland", [square(0, 0, 100)]), layer("urban_space", [square(0, 0, 100)])]
    whole = _build(layers, tolerance_m=0.5)
    for size in (10.0, 9.9, 33.3):
        tiled = _build(layers, tolerance_m=0.5, cell_size_m=size)
        assert tiled.absorbed == ()
        assert tiled.pieces["area_m2"].sum() == pytest.approx(whole.pieces["area_m2"].sum())
        assert tiled.conflicts["area_m2"].sum() == pytest.approx(10_000)


def test_bad_geometry_is_a_domain_error_naming_layer_and_feature() -> None:
    bad = layer("permanent_farmland", [square(0, 0, 10), BOW_TIE], ["ok", "NT-bow"], name="农田 2024")
    with pytest.raises(MergeInputError, match=r"农田 2024.*NT-bow.*invalid") as err:
        _build([bad])
    assert err.value.code == "merge_input"


def test_no_layers_and_boundary_only_are_errors() -> None:
    with pytest.raises(NoLayersError):
        _build([])
    with pytest.raises(NoLayersError):
        _build([layer("city_boundary", [square(0, 0, 10)])])


def test_layers_in_different_crs_are_rejected() -> None:
    a = layer("permanent_farmland", [square(0, 0, 10)])
    b = layer("ecological_redline", [square(0, 0, 10)], crs="EPSG:4527")
    with pytest.raises(CRSMismatchError):
        _build([a, b])


def test_negative_tolerance_and_unranked_kind_are_errors() -> None:
    farm = layer("permanent_farmland", [square(0, 0, 10)])
    with pytest.raises(MergeInputError, match="tolerance"):
        _build([farm], tolerance_m=-1.0)
    only_red = Precedence(order=("ecological_redline",), lines=("ecological_redline",))
    with pytest.raises(PrecedenceError, match="permanent_farmland"):
        build_blueprint([farm], catalogue=CAT, precedence=only_red, tolerance_m=0.5, version="t")


def test_boundary_layer_among_the_layers_is_used_as_the_boundary() -> None:
    bp = _build([layer("permanent_farmland", [square(0, 0, 10)]), layer("city_boundary", [square(0, 0, 20)])])
    assert bp.pieces["area_m2"].sum() == pytest.approx(400)
    assert set(bp.pieces["kind"]) == {"permanent_farmland", "unplanned"}


def test_coverage_check_rejects_overlap_gap_and_mismatched_edges() -> None:
    a, b = square(0, 0, 10), square(10, 0, 10)
    good = np.array([a, b])
    verify_partition(good, 200.0, 60.0)
    with pytest.raises(CoverageCheckError):
        verify_partition(np.array([a, square(5, 0, 10)]), 200.0)  # overlap
    with pytest.raises(CoverageCheckError, match="cover"):
        verify_partition(np.array([a]), 200.0)  # gap
    split = shapely.Polygon([*list(b.exterior.coords)[:-1], (b.bounds[0], b.bounds[1] + 5)])
    assert edges_match(good, 60.0)
    assert not edges_match(np.array([a, split]), 60.0)  # b has a vertex on the shared edge, a has not
    assert not edges_match(np.array([a, square(5, 0, 10)]), 50.0)


def test_seams_are_stitched_where_one_side_has_an_extra_vertex() -> None:
    """A feature collapsing on one side of a cell line leaves vertices only on the other: add them."""
    left = square(0, 0, 10)
    right = shapely.Polygon([(500_010.0, 3_420_000.0), (500_020.0, 3_420_000.0), (500_020.0, 3_420_010.0),
                             (500_010.0, 3_420_010.0), (500_010.0, 3_420_004.123), (500_010.0, 3_420_000.0)])
    faces = np.array([left, right])
    assert not edges_match(faces, 60.0)
    xs, ys = np.array([500_000.0, 500_010.0, 500_020.0]), np.array([3_420_000.0, 3_420_010.0])
    stitched, changed = stitch_seams(faces, xs, ys)
    assert changed == 1
    assert edges_match(stitched, 60.0) and shapely.coverage_is_valid(stitched)
    assert stitched[0].equals(left) and shapely.get_num_coordinates(stitched[0]) == 6
    assert stitch_seams(stitched, xs, ys)[1] == 0


def _isolated_scene():
    """Patches well inside a zone (isolated), one closer to the zone edge than the clearance, one crossing
    a red line, one thin enough to be a sliver, and ids that need JSON escaping."""
    zone = layer("agricultural_space", [square(0, 0, 300)], ['NY "1"'], name="农业空间")
    patches = [square(20, 20, 30), square(100, 20, 30), square(0.3, 200, 30), square(190, 190, 40),
               shapely.box(square(0, 0, 1).bounds[0] + 60, square(0, 0, 1).bounds[1] + 120,
                           square(0, 0, 1).bounds[0] + 90, square(0, 0, 1).bounds[1] + 120.4)]
    farmland = layer("permanent_farmland", patches, ["NT\\a", "NT-b", "NT-c", "NT-d", "NT-thin"],
                     name="农田")
    red = layer("ecological_redline", [square(180, 180, 30)], ["HX-1"], name="红线")
    return [zone, farmland, red]


@pytest.mark.parametrize("tolerance", [0.0, 0.5])
def test_isolated_features_take_the_short_path_with_the_same_result(tolerance: float,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import blueprint.coverage as coverage

    fast = _build(_isolated_scene(), tolerance_m=tolerance, workers=1)
    calls: list[int] = []
    real = coverage.isolated_features

    def none_isolated(cell, clipped, tolerance_m):  # type: ignore[no-untyped-def]
        found = real(cell, clipped, tolerance_m)
        calls.append(len(found[0]))
        return tuple(x[:0] for x in found)

    monkeypatch.setattr(coverage, "isolated_features", none_isolated)
    full = _build(_isolated_scene(), tolerance_m=tolerance, workers=1)
    # NT\a and NT-b; at tolerance 0 also NT-c (0.3 m from the zone edge) and the 0.4 m strip
    assert calls and sum(calls) == (4 if tolerance == 0 else 2)
    cols = ["piece_id", "kind", "kinds", "covered_by", "sources"]
    assert fast.pieces[cols].equals(full.pieces[cols])
    assert np.allclose(fast.pieces["area_m2"], full.pieces["area_m2"], rtol=1e-12)
    assert shapely.equals(fast.pieces.geometry.to_numpy(), full.pieces.geometry.to_numpy()).all()
    assert fast.conflicts.drop(columns="geometry").equals(full.conflicts.drop(columns="geometry"))
    assert fast.absorbed == full.absorbed
    holed = fast.pieces.loc[fast.pieces["kind"] == "agricultural_space"]
    assert shapely.get_num_interior_rings(holed.geometry.to_numpy()).sum() >= 2
    assert json.loads(fast.pieces["sources"].iloc[0])  # escaped ids still make valid JSON
