"""Golden merges: hand-derived partitions, conflicts and absorbed slivers (tests/data/blueprint)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import shapely

from blueprint.merge import build_blueprint
from blueprint.precedence import load_precedence
from layers.catalogue import load_catalogue
from tests.blueprint.scenes import golden_scenes, layer_from_spec, shape_of

CAT = load_catalogue()
PREC = load_precedence(None, CAT)
SCENES = golden_scenes()


def _build(scene: dict[str, Any], tolerance_m: float, **kw: Any):
    boundary = layer_from_spec(scene["boundary"]) if "boundary" in scene else None
    return build_blueprint([layer_from_spec(s) for s in scene["layers"]], catalogue=CAT, precedence=PREC,
                           tolerance_m=tolerance_m, version="golden", boundary=boundary, **kw)


def _match(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """Pair each expected item with the one output row of equal geometry."""
    assert len(rows) == len(expected), f"{len(rows)} rows, expected {len(expected)}"
    pairs = []
    for exp in expected:
        geom = shape_of(exp)
        hits = [r for r in rows if shapely.equals(r["geometry"], geom)]
        assert len(hits) == 1, f"no single output row equals {exp.get('box') or exp.get('wkt')}"
        pairs.append((hits[0], exp))
    return pairs


@pytest.mark.parametrize(("scene", "run"), [(s, r) for _, s, r in SCENES], ids=[i for i, _, _ in SCENES])
def test_pieces_match_the_hand_derived_partition(scene: dict, run: dict) -> None:
    bp = _build(scene, run["tolerance_m"])
    rows = bp.pieces.to_dict("records")
    for row, exp in _match(rows, run["pieces"]):
        assert row["kind"] == exp["kind"]
        assert json.loads(row["kinds"]) == exp["kinds"]
        assert json.loads(row["covered_by"]) == exp["covered_by"]
        assert [[s["kind"], s["feature_id"]] for s in json.loads(row["sources"])] == exp["sources"]
        assert row["area_m2"] == pytest.approx(exp["area_m2"], abs=1e-3)


@pytest.mark.parametrize(("scene", "run"), [(s, r) for _, s, r in SCENES], ids=[i for i, _, _ in SCENES])
def test_conflicts_match_the_hand_derived_list(scene: dict, run: dict) -> None:
    bp = _build(scene, run["tolerance_m"])
    rows = bp.conflicts.to_dict("records")
    for row, exp in _match(rows, run["conflicts"]):
        for key in ("kind_a", "kind_b", "rule", "winner", "layer_a", "layer_b", "resolution"):
            assert row[key] == exp[key], key
        assert json.loads(row["feature_ids"]) == exp["feature_ids"]
        assert row["area_m2"] == pytest.approx(exp["area_m2"], abs=1e-3)
    assert list(bp.conflicts["conflict_id"]) == [f"C{i:06d}" for i in range(1, len(rows) + 1)]


@pytest.mark.parametrize(("scene", "run"), [(s, r) for _, s, r in SCENES], ids=[i for i, _, _ in SCENES])
def test_absorbed_slivers_are_reported(scene: dict, run: dict) -> None:
    bp = _build(scene, run["tolerance_m"])
    got = [{"into_kind": a["into_kind"], "was": a["was"], "area_m2": a["area_m2"]} for a in bp.absorbed]
    assert len(got) == len(run["absorbed"])
    for g, e in zip(got, run["absorbed"], strict=True):
        assert g["into_kind"] == e["into_kind"] and g["was"] == e["was"]
        assert g["area_m2"] == pytest.approx(e["area_m2"], abs=1e-3)
    pieces = set(bp.pieces["piece_id"])
    assert all(a["piece_id"] in pieces for a in bp.absorbed)


@pytest.mark.parametrize(("scene", "run"), [(s, r) for _, s, r in SCENES], ids=[i for i, _, _ in SCENES])
def test_golden_scenes_survive_a_fine_grid(scene: dict, run: dict) -> None:
    """Cut into 7 m cells the pieces split along cell lines, but areas per kind and conflicts stay."""
    whole = _build(scene, run["tolerance_m"])
    tiled = _build(scene, run["tolerance_m"], cell_size_m=7.0)
    assert tiled.meta["cells"] > 1
    for col in ("kind", "covered_by"):
        a = whole.pieces.groupby(col)["area_m2"].sum()
        b = tiled.pieces.groupby(col)["area_m2"].sum()
        assert a.index.tolist() == b.index.tolist()
        assert b.to_numpy() == pytest.approx(a.to_numpy(), abs=1e-3)
    assert sorted(whole.conflicts["area_m2"].round(3)) == sorted(tiled.conflicts["area_m2"].round(3))
    assert whole.conflicts["feature_ids"].tolist() == tiled.conflicts["feature_ids"].tolist()
