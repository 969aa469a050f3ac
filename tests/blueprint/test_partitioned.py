"""The out-of-core build (blueprint.partitioned) equals the in-memory build, on threads and on dask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from bench.province import generate_province, layer_parts, load_layers
from bench.synthetic import scaled_layers
from blueprint.merge import build_blueprint
from blueprint.model import Blueprint
from blueprint.partitioned import PartitionedBuild, Source, build_partitioned, sources_from_layers
from blueprint.precedence import load_precedence
from blueprint.tasks import dask_runner
from layers.catalogue import load_catalogue
from tests.blueprint.scenes import golden_scenes, layer_from_spec

CAT = load_catalogue()
PREC = load_precedence(None, CAT)


def assert_same(whole: Blueprint, parted: PartitionedBuild) -> None:
    """Same pieces (ids, attributes, geometry, areas to 1e-6 m²), conflicts and absorbed slivers."""
    a, b = whole.pieces, parted.pieces()
    assert parted.piece_count == len(a) and len(b) == len(a)
    assert list(b["piece_id"]) == list(a["piece_id"])
    for column in ("kind", "kinds", "covered_by", "sources"):
        assert list(b[column]) == list(a[column]), column
    for column in ("area_m2", "ellipsoidal_area_m2"):
        assert np.abs(b[column].to_numpy() - a[column].to_numpy()).max(initial=0) <= 1e-6, column
    assert shapely.equals_exact(b.geometry.values, a.geometry.values, 0).all()
    ca, cb = whole.conflicts, parted.blueprint.conflicts
    assert list(cb.columns) == list(ca.columns) and len(cb) == len(ca)
    for column in ca.columns:
        if column == "geometry":
            assert shapely.equals(cb.geometry.values, ca.geometry.values).all()
        elif column == "area_m2":
            assert np.abs(cb[column].to_numpy() - ca[column].to_numpy()).max(initial=0) <= 1e-6
        else:
            assert list(cb[column]) == list(ca[column]), column
    assert parted.blueprint.absorbed == whole.absorbed
    assert parted.blueprint.meta["cells"] == whole.meta["cells"]
    assert parted.blueprint.meta["stitched_pieces"] == whole.meta["stitched_pieces"]
    sa, sb = whole.summary(), parted.blueprint.summary()
    assert sb["piece_count"] == sa["piece_count"] and sb["conflict_count"] == sa["conflict_count"]
    assert sb["area_by_kind_m2"] == pytest.approx(sa["area_by_kind_m2"], abs=0.011)
    assert sb["ellipsoidal_area_by_kind_m2"] == pytest.approx(sa["ellipsoidal_area_by_kind_m2"], abs=0.011)


def _city(n: int = 1500) -> tuple[list[Any], Any]:
    return scaled_layers(n, seed=3)


def test_out_of_core_equals_in_memory_on_a_small_city(tmp_path: Path) -> None:
    layers, boundary = _city()
    whole = build_blueprint(
        layers,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=0.5,
        version="v1",
        boundary=boundary,
        cell_size_m=5000,
    )
    parted = build_partitioned(
        sources_from_layers(layers, boundary),
        tmp_path,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=0.5,
        version="v1",
        cell_size_m=5000,
        batch_features=400,
    )
    assert parted.blueprint.meta["batches"] >= 4 and whole.meta["cells"] >= 100
    assert len(parted.parts) == parted.blueprint.meta["batches"]
    assert all(p.parent == tmp_path / "pieces" and p.name.startswith("part-") for p in parted.parts)
    assert not (tmp_path / "work").exists()  # the spill files are cleaned up
    assert_same(whole, parted)


@pytest.mark.parametrize(("name", "scene", "run"), golden_scenes(), ids=[i for i, _, _ in golden_scenes()])
def test_golden_scenes_on_a_fine_grid_one_row_per_batch(
    name: str, scene: dict, run: dict, tmp_path: Path
) -> None:
    """Hand-made scenes cut into 7 m cells, each grid row its own batch: seams cross every batch line."""
    layers = [layer_from_spec(s) for s in scene["layers"]]
    boundary = layer_from_spec(scene["boundary"]) if "boundary" in scene else None
    whole = build_blueprint(
        layers,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=run["tolerance_m"],
        version="g",
        boundary=boundary,
        cell_size_m=7.0,
    )
    parted = build_partitioned(
        sources_from_layers(layers, boundary),
        tmp_path,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=run["tolerance_m"],
        version="g",
        cell_size_m=7.0,
        batch_features=1,
    )
    assert parted.blueprint.meta["batches"] > 1, name
    assert_same(whole, parted)


def test_dask_build_equals_in_process_build(tmp_path: Path) -> None:
    """The batches as dask tasks (a LocalCluster of two threaded workers) give the same blueprint."""
    layers, boundary = _city(800)
    kw: dict[str, Any] = {
        "catalogue": CAT,
        "precedence": PREC,
        "tolerance_m": 0.5,
        "version": "v1",
        "cell_size_m": 6000,
        "batch_features": 300,
    }
    whole = build_blueprint(
        layers,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=0.5,
        version="v1",
        boundary=boundary,
        cell_size_m=6000,
    )
    with dask_runner(workers=2, processes=False) as runner:
        on_dask = build_partitioned(
            sources_from_layers(layers, boundary), tmp_path / "dask", runner=runner, **kw
        )
    assert_same(whole, on_dask)


@pytest.mark.slow
def test_dask_worker_processes_give_the_same_blueprint(tmp_path: Path) -> None:
    """Real worker processes (plan and results pickled across): still the in-memory result."""
    layers, boundary = _city(400)
    whole = build_blueprint(
        layers,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=0.5,
        version="v1",
        boundary=boundary,
        cell_size_m=8000,
    )
    with dask_runner(workers=2, processes=True) as runner:
        parted = build_partitioned(
            sources_from_layers(layers, boundary),
            tmp_path,
            catalogue=CAT,
            precedence=PREC,
            tolerance_m=0.5,
            version="v1",
            cell_size_m=8000,
            batch_features=200,
            runner=runner,
        )
    assert parted.blueprint.meta["batches"] >= 2
    assert_same(whole, parted)


def test_province_parts_build_like_the_province_in_memory(tmp_path: Path) -> None:
    """GeoParquet parts read one at a time (the generator's output) give the in-memory blueprint; the
    generator gives the same files for the same seed."""
    generate_province(tmp_path / "a", 3000, seed=5, n_tiles=4)
    generate_province(tmp_path / "b", 3000, seed=5, n_tiles=4)
    for part in sorted((tmp_path / "a").rglob("*.parquet")):
        twin = tmp_path / "b" / part.relative_to(tmp_path / "a")
        assert part.read_bytes() == twin.read_bytes(), part.name
    layers, boundary = load_layers(tmp_path / "a")
    assert [lay.kind for lay in layers].count("permanent_farmland") == 1
    assert sum(len(lay.frame) for lay in layers if lay.kind == "permanent_farmland") == 3000
    whole = build_blueprint(
        layers, catalogue=CAT, precedence=PREC, tolerance_m=0.5, version="p", boundary=boundary
    )
    sources = [Source(lay, tuple(parts)) for lay, parts in layer_parts(tmp_path / "a")]
    parted = build_partitioned(
        sources,
        tmp_path / "out",
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=0.5,
        version="p",
        batch_features=1500,
    )
    assert parted.blueprint.meta["batches"] >= 2
    assert_same(whole, parted)


def test_an_unreachable_scheduler_is_named_in_the_error() -> None:
    from blueprint.tasks import SchedulerError

    with pytest.raises(SchedulerError, match=r"tcp://127\.0\.0\.1:9 .*--workers N") as caught:
        with dask_runner("tcp://127.0.0.1:9", connect_timeout="1s"):
            pass
    assert caught.value.code == "dask_scheduler_unreachable"


def test_a_bad_feature_in_a_part_is_named(tmp_path: Path) -> None:
    """Parts are read from files, not from checked layers: a bow tie is refused with its layer and id."""
    import geopandas as gpd

    from blueprint.errors import MergeInputError

    generate_province(tmp_path / "p", 200, seed=1, n_tiles=2)
    part = tmp_path / "p" / "permanent_farmland" / "part-00001.parquet"
    frame = gpd.read_parquet(part)
    x, y = frame.geometry.iloc[3].exterior.coords[0]
    bow_tie = shapely.Polygon([(x, y), (x + 10, y + 10), (x + 10, y), (x, y + 10)])
    frame.loc[3, "geometry"] = bow_tie
    frame.to_parquet(part)
    sources = [Source(lay, tuple(parts)) for lay, parts in layer_parts(tmp_path / "p")]
    with pytest.raises(MergeInputError, match=r"永久基本农田.*feature NT0001-0000004 is invalid"):
        build_partitioned(
            sources, tmp_path / "out", catalogue=CAT, precedence=PREC, tolerance_m=0.5, version="v"
        )


def test_piece_ids_from_batch_counts_equal_one_global_sort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver numbers pieces from each batch's order and counts per kind; the global sort it falls
    back on when keys interleave at a batch line gives the same ids."""
    import blueprint.partitioned as partitioned

    layers, boundary = _city(600)
    kw: dict[str, Any] = {"catalogue": CAT, "precedence": PREC, "tolerance_m": 0.5, "version": "v",
                          "cell_size_m": 2_000.0}
    counted = build_partitioned(sources_from_layers(layers, boundary), tmp_path / "a", batch_features=1, **kw)
    calls: list[int] = []

    def sorted_only(results: Any, plan: Any) -> Any:
        calls.append(len(results))
        return partitioned._ranks_sorted(plan, len(results))

    monkeypatch.setattr(partitioned, "_ranks", sorted_only)
    resorted = build_partitioned(
        sources_from_layers(layers, boundary), tmp_path / "b", batch_features=1, **kw
    )
    assert calls and calls[0] > 1
    a, b = counted.pieces(), resorted.pieces()
    assert list(a["piece_id"]) == list(b["piece_id"]) and len(a) > 100
    assert shapely.equals_exact(a.geometry.values, b.geometry.values, 0).all()
