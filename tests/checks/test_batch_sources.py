"""checks.batch_fast: piece sources parsed in columns (pyarrow) give the Python parse's feature ids."""

from __future__ import annotations

import json

from checks.batch_fast import _features_arrow, _features_python

KINDS = {"permanent_farmland": 0, "ecological_redline": 1, "urban_space": 2}


def src(kind, layer, fid, **extra):
    return {"kind": kind, "layer": layer, "feature_id": fid, "source": "x.shp", "checksum": "c"} | extra


def test_columnar_parse_equals_python_parse():
    texts = [
        json.dumps([src("permanent_farmland", "永久基本农田", "F9"),
                    src("permanent_farmland", "永久基本农田", "F10"),
                    src("permanent_farmland", "永久基本农田", "F9"), src("urban_space", "zones", "z1")],
                   ensure_ascii=False),
        json.dumps([src("ecological_redline", "redline", "r:1", note=[1, 2])]),  # extra fields ignored
        json.dumps([src("not_a_kind", "other", "o1"), src("urban_space", "zones", "z2")]),
        "[]",
        json.dumps([{"layer": "l", "feature_id": "no kind"}, src("urban_space", "zones", "Z")]),
        json.dumps([src("urban_space", "b", "2"), src("urban_space", "a", "10"),
                    src("urban_space", "B", "1")]),
    ]
    codes = [3, 5, 8, 9, 11, 12]
    columnar = _features_arrow(texts, codes, KINDS, 3)
    assert columnar is not None
    assert columnar == _features_python(texts, codes, KINDS, 3)
    assert columnar[3 * 3 + 0] == ("永久基本农田:F10", "永久基本农田:F9")  # code-point order, as sorted()


def test_texts_pyarrow_would_read_differently_fall_back_to_python():
    numeric = json.dumps([src("urban_space", "zones", 12)])  # Python: "zones:12"
    null = json.dumps([src("urban_space", None, "a")])  # Python: "None:a"
    missing = json.dumps([{"kind": "urban_space", "feature_id": "a"}])  # Python: ":a"
    pretty = json.dumps([src("urban_space", "zones", "a")], indent=1)  # line breaks inside the text
    for text in (numeric, null, missing, pretty):
        assert _features_arrow([text], [0], KINDS, 3) is None
        assert _features_python([text], [0], KINDS, 3)  # the fallback reads it
