"""10⁵ pieces and 10⁵ layer features through the stores (correctness at scale; timings printed with -s)."""

from __future__ import annotations

import json
import time

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from blueprint.store import BlueprintStore
from layers.store import LayerStore
from tests.geoms import X0, Y0
from tests.storage.helpers import WORK, blueprint, farmland_layer

N = 100_000
pytestmark = pytest.mark.slow


def _grid(n: int) -> np.ndarray:
    """n 15 m squares on a 20 m grid, 1000 per row."""
    i = np.arange(n)
    xs, ys = X0 + i % 1000 * 20.0, Y0 + i // 1000 * 20.0
    return shapely.box(xs, ys, xs + 15, ys + 15)


def test_hundred_thousand_pieces(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    original = blueprint("v1", n_pieces=1)
    source = json.dumps([{"kind": "permanent_farmland", "layer": "农田", "feature_id": "1"}],
                        ensure_ascii=False)
    original.pieces = gpd.GeoDataFrame(
        {"piece_id": [f"P{i + 1:06d}" for i in range(N)], "kind": "permanent_farmland",
         "kinds": '["permanent_farmland"]', "covered_by": '["permanent_farmland"]', "sources": source,
         "area_m2": 225.0}, geometry=_grid(N), crs=WORK)
    started = time.perf_counter()
    store.save_draft(original)
    saved = time.perf_counter()
    loaded = store.get("v1")
    done = time.perf_counter()
    print(f"\n{engine.dialect.name}: save {N} pieces {saved - started:.2f} s, load {done - saved:.2f} s")
    assert len(loaded.pieces) == N
    assert loaded.pieces.geometry.area.sum() == pytest.approx(225.0 * N)
    assert loaded.pieces.geometry.geom_equals_exact(original.pieces.geometry, tolerance=0).all()
    started = time.perf_counter()
    window = store.pieces("v1", bbox=(X0, Y0, X0 + 99, Y0 + 99))  # 5 × 5 squares of the grid
    print(f"{engine.dialect.name}: bbox query {1000 * (time.perf_counter() - started):.0f} ms")
    assert len(window) == 25


def test_hundred_thousand_layer_features(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    layer = farmland_layer()
    layer.frame = gpd.GeoDataFrame({"feature_id": [str(i) for i in range(N)], "名称": "永久基本农田",
                                    "code": np.arange(N)}, geometry=_grid(N), crs=WORK)
    started = time.perf_counter()
    store.save(layer)
    saved = time.perf_counter()
    loaded = store.get(layer.name)
    done = time.perf_counter()
    print(f"\n{engine.dialect.name}: save {N} features {saved - started:.2f} s, load {done - saved:.2f} s")
    assert loaded.frame["code"].tolist() == list(range(N))
    assert loaded.frame.geometry.geom_equals_exact(layer.frame.geometry, tolerance=0).all()
