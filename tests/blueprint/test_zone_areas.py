"""A blueprint spanning 3° zones: one storage CRS, each piece's area in its own zone (layers.areas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import CRS, Transformer

from blueprint.merge import build_blueprint
from blueprint.partitioned import build_partitioned, sources_from_layers
from blueprint.precedence import load_precedence
from layers.areas import ellipsoidal_areas
from layers.catalogue import load_catalogue
from tests.blueprint.scenes import layer
from tests.blueprint.test_partitioned import assert_same

CAT = load_catalogue()
PREC = load_precedence(None, CAT)
STORAGE = CRS.from_epsg(4548)  # 3° GK CM 117°E


def _square(lon: float, lat: float, side: float = 1000.0) -> shapely.Polygon:
    """A ``side`` m square (in the storage CRS) whose corner lies at (lon, lat)."""
    x, y = Transformer.from_crs(4490, STORAGE, always_xy=True).transform(lon, lat)
    return shapely.box(round(x), round(y), round(x) + side, round(y) + side)


def _layers() -> list:
    # farmland near the meridians of zone 38 (114°) and zone 39 (117°); an urban boundary in zone 40 (120°)
    # partly over farmland there, so the zone-40 pieces hold a conflict
    farmland = layer(
        "permanent_farmland",
        [_square(114.05, 31.0), _square(117.05, 31.0), _square(119.95, 32.0)],
        ["NT38", "NT39", "NT40"],
    )
    urban = layer("urban_boundary", [_square(114.06, 31.005), _square(119.955, 32.002)], ["KB38", "KB40"])
    return [farmland, urban]


def test_piece_areas_are_taken_in_each_pieces_own_zone(tmp_path: Path) -> None:
    bp = build_blueprint(_layers(), catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="z")
    pieces = bp.pieces
    geoms = np.asarray(pieces.geometry.values, dtype=object)
    ellipsoidal = ellipsoidal_areas(geoms, STORAGE)
    storage_plane = shapely.area(geoms)
    for kind in pieces["kind"].unique():
        rows = (pieces["kind"] == kind).to_numpy()
        total = pieces["area_m2"].to_numpy()[rows].sum()
        assert total == pytest.approx(ellipsoidal[rows].sum(), rel=1e-4), kind  # within 0.01 %
    # 3° off the storage meridian its plane area is ~0.2 % too large: what the per-zone area corrects
    far = shapely.bounds(geoms)[:, 0] < 400_000
    assert far.any() and (~far).any()
    assert (storage_plane[far] / ellipsoidal[far] - 1 > 1e-3).all()
    near_cm = shapely.bounds(geoms)[:, 0] > 480_000
    near_cm &= shapely.bounds(geoms)[:, 2] < 520_000
    assert (pieces["area_m2"].to_numpy()[near_cm] == storage_plane[near_cm]).all()  # own zone: unchanged
    assert bp.conflicts["area_m2"].sum() == pytest.approx(
        ellipsoidal_areas(np.asarray(bp.conflicts.geometry.values, dtype=object), STORAGE).sum(), rel=1e-4
    )
    parted = build_partitioned(
        sources_from_layers(_layers(), None),
        tmp_path,
        catalogue=CAT,
        precedence=PREC,
        tolerance_m=0.0,
        version="z",
        cell_size_m=50_000,
        batch_features=1,
    )
    whole = build_blueprint(
        _layers(), catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="z", cell_size_m=50_000
    )
    assert_same(whole, parted)


def test_ellipsoidal_sums_per_kind_hold_at_zone_edges(tmp_path: Path) -> None:
    """Pieces at the edges of zones 38, 39 and 40, where own-zone plane areas are ~+0.05 %: the stored
    ellipsoidal areas sum per kind to the Geod ellipsoidal sums well within 0.01 %, in memory and out of
    core."""
    farmland = layer(
        "permanent_farmland",
        [_square(115.45, 31.0), _square(115.55, 31.2), _square(118.45, 32.0), _square(121.4, 32.5)],
        ["E38", "E39", "E39b", "E40"],
    )
    urban = layer("urban_boundary", [_square(115.452, 31.002), _square(121.402, 32.503)], ["U38", "U40"])
    bp = build_blueprint([farmland, urban], catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="e")
    pieces = bp.pieces
    geod = ellipsoidal_areas(np.asarray(pieces.geometry.values, dtype=object), STORAGE)
    summary = bp.summary()["ellipsoidal_area_by_kind_m2"]
    assert set(summary) == {"permanent_farmland", "urban_boundary"}
    for kind in pieces["kind"].unique():
        rows = (pieces["kind"] == kind).to_numpy()
        stored = pieces["ellipsoidal_area_m2"].to_numpy()[rows].sum()
        assert stored == pytest.approx(geod[rows].sum(), rel=1e-6), kind
        assert summary[kind] == pytest.approx(stored, abs=0.01)
        assert pieces["area_m2"].to_numpy()[rows].sum() / geod[rows].sum() - 1 > 2e-4  # what it corrects
    parted = build_partitioned(
        sources_from_layers([farmland, urban], None), tmp_path, catalogue=CAT, precedence=PREC,
        tolerance_m=0.0, version="e", cell_size_m=50_000, batch_features=1,
    )
    whole = build_blueprint(
        [farmland, urban], catalogue=CAT, precedence=PREC, tolerance_m=0.0, version="e", cell_size_m=50_000
    )
    assert_same(whole, parted)
