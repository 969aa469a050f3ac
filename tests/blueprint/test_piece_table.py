"""The arrow-built texts of the out-of-core build equal the merge's Python-built ones (issue #15)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from blueprint.conflicts import _joined_json, _json_strings
from blueprint.merge import _Features, _Pieces, _sources_json
from blueprint.piece_table import sources_column
from layers.model import PlanLayer

IDS = ["a1", 'quote"d', "back\\slash", "ctl\x01", "中文 id", "", "tab\tid", "plain-99"]


def _layer(kind: str, name: str) -> PlanLayer:
    frame = gpd.GeoDataFrame({"feature_id": []}, geometry=gpd.GeoSeries([], crs=4548), crs=4548)
    return PlanLayer(kind=kind, name=name, source=f"{name}.gpkg", checksum="c" * 8, crs_in="EPSG:4548",
                     frame=frame)


def test_sources_column_equals_the_merge_text() -> None:
    rng = np.random.default_rng(3)
    n_feats, n_pieces = len(IDS) * 3, 40
    feats = _Features(
        np.empty(n_feats, object),
        rng.integers(0, 2, n_feats),
        rng.integers(0, 2, n_feats),
        [IDS[i % len(IDS)] + str(i // len(IDS)) for i in range(n_feats)],
        np.zeros(n_feats, bool),
        ["ecological_redline", "permanent_farmland"],
        [_layer("ecological_redline", "红线 \"A\""), _layer("permanent_farmland", "农田")],
    )
    pair_piece = rng.integers(0, n_pieces - 3, 90)  # the last pieces are covered by nothing: "[]"
    pair_feature = rng.integers(0, n_feats, 90)
    keep = np.unique(pair_piece * n_feats + pair_feature, return_index=True)[1]
    pieces = _Pieces(np.array([shapely.Point(0, 0)] * n_pieces, dtype=object), pair_piece[keep],
                     pair_feature[keep], np.zeros(n_pieces, np.int64))
    assert sources_column(pieces, feats).to_pylist() == _sources_json(pieces, feats)


def test_joined_json_equals_python_json() -> None:
    lists = [IDS, [], ["x"], IDS[::-1], [""]]
    assert _joined_json(lists).to_pylist() == [", ".join(_json_strings(x)) for x in lists]
