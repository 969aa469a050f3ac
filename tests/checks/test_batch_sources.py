"""checks.batch_sources: piece sources parsed once per version, in columns (pyarrow) as the Python parse
reads them, saved beside the version and read back only for the same pieces."""

from __future__ import annotations

import json

import numpy as np

from checks import batch_sources
from checks.batch_sources import _flat_arrow, _flat_python, build, load, load_or_build, save

KINDS = ["permanent_farmland", "ecological_redline", "urban_space"]


def src(kind, layer, fid, **extra):
    return {"kind": kind, "layer": layer, "feature_id": fid, "source": "x.shp", "checksum": "c"} | extra


TEXTS = [
    json.dumps([src("permanent_farmland", "永久基本农田", "F9"),
                src("permanent_farmland", "永久基本农田", "F10"),
                src("permanent_farmland", "永久基本农田", "F9"), src("urban_space", "zones", "z1")],
               ensure_ascii=False),
    json.dumps([src("ecological_redline", "redline", "r:1", note=[1, 2])]),  # extra fields ignored
    json.dumps([src("not_a_kind", "other", "o1"), src("urban_space", "zones", "z2")]),
    "[]",
    json.dumps([src("urban_space", "b", "2"), src("urban_space", "a", "10"), src("urban_space", "B", "1")]),
    json.dumps([src("urban_space", "zones", "z1")]),  # the same set as text 0's urban_space
]


def as_lists(flat):
    return [list(a) for a in flat]


def sets_of(sets, piece, kind):
    found = sets.sets_of(np.asarray([piece]), np.asarray([KINDS.index(kind)]), KINDS)
    text = sets.texts[int(found[0])]
    assert sets.unions(np.zeros(1, dtype=np.int64), found, 1) == [text]  # the members agree with the text
    return tuple(json.loads(text))


def test_columnar_parse_equals_python_parse():
    columnar = _flat_arrow(TEXTS)
    assert columnar is not None
    assert as_lists(columnar) == as_lists(_flat_python(TEXTS))


def test_feature_sets_per_piece_and_kind():
    ids = np.asarray([f"P{i}" for i in range(len(TEXTS) + 1)], dtype=object)
    sets = build(ids, np.asarray([*TEXTS, TEXTS[1]], dtype=object))
    # code-point order, as sorted()
    assert sets_of(sets, 0, "permanent_farmland") == ("永久基本农田:F10", "永久基本农田:F9")
    assert sets_of(sets, 4, "urban_space") == ("B:1", "a:10", "b:2")
    assert sets_of(sets, 1, "ecological_redline") == ("redline:r:1",)
    assert sets_of(sets, 6, "ecological_redline") == ("redline:r:1",)  # a repeated text: the same codes
    assert sets_of(sets, 3, "urban_space") == ()  # no source of that kind: the empty set, id 0
    assert sets_of(sets, 1, "urban_space") == ()
    same = sets.sets_of(np.asarray([0, 5]), np.asarray([2, 2]), KINDS)  # one set, interned once
    assert same[0] == same[1] != 0
    # the text of a set is the batch table's JSON, the same as json.dumps
    assert sets.texts[int(same[0])] == json.dumps(["zones:z1"])
    # unions of several sets: their features once each, sorted (two owners at once)
    farm, urban4, urban0 = (sets.sets_of(np.asarray([p]), np.asarray([KINDS.index(k)]), KINDS)[0]
                            for p, k in ((0, "permanent_farmland"), (4, "urban_space"), (0, "urban_space")))
    assert sets.unions(np.asarray([0, 0, 0, 1, 1]), np.asarray([urban4, urban0, 0, farm, farm]), 2) == [
        json.dumps(["B:1", "a:10", "b:2", "zones:z1"]), json.dumps(["永久基本农田:F10", "永久基本农田:F9"])]


def test_texts_pyarrow_would_read_differently_fall_back_to_python():
    numeric = json.dumps([src("urban_space", "zones", 12)])  # Python: "zones:12"
    null = json.dumps([src("urban_space", None, "a")])  # Python: "None:a"
    missing = json.dumps([{"kind": "urban_space", "feature_id": "a"}])  # Python: ":a"
    pretty = json.dumps([src("urban_space", "zones", "a")], indent=1)  # line breaks inside the text
    expected = {numeric: ("zones:12",), null: ("None:a",), missing: (":a",), pretty: ("zones:a",)}
    for text, features in expected.items():
        assert _flat_arrow([text]) is None
        sets = build(np.asarray(["P1"], dtype=object), np.asarray([text], dtype=object))
        assert sets_of(sets, 0, "urban_space") == features


def test_saved_sets_are_read_back_for_the_same_pieces_only(tmp_path, monkeypatch):
    ids = np.asarray([f"P{i}" for i in range(len(TEXTS))], dtype=object)
    sources = np.asarray(TEXTS, dtype=object)
    built = load_or_build(tmp_path, ids, sources)  # nothing saved yet: parsed, then saved
    assert all((tmp_path / name).is_file() for name in batch_sources.NAMES)
    calls = []
    monkeypatch.setattr(batch_sources, "build", lambda *a: calls.append(a) or built)
    again = load_or_build(tmp_path, ids, sources)
    assert calls == []  # read back, not parsed
    assert again.texts == built.texts and again.kinds == built.kinds and again.names == built.names
    for name in ("source_code", "text_kind", "text_set", "set_start", "set_codes"):
        assert np.array_equal(getattr(again, name), getattr(built, name))
    other = ids.copy()
    other[0] = "Q0"
    assert load(tmp_path, other) is None  # other pieces: not these sets
    load_or_build(tmp_path, other, sources)
    assert len(calls) == 1


def test_unreadable_saved_sets_are_rebuilt(tmp_path):
    ids = np.asarray(["P1"], dtype=object)
    save(build(ids, np.asarray([TEXTS[1]], dtype=object)), tmp_path)
    (tmp_path / batch_sources.NAMES[1]).write_bytes(b"not parquet")
    assert load(tmp_path, ids) is None
    sets = load_or_build(tmp_path, ids, np.asarray([TEXTS[1]], dtype=object))
    assert sets_of(sets, 0, "ecological_redline") == ("redline:r:1",)
    assert load(tmp_path, ids) is not None  # saved again, whole
