"""checks.batch_sources: each piece's kind → source feature set, parsed once per blueprint version.

The batch table's ``feature_ids`` column lists, per parcel × kind, the 'layer:feature_id' of every source
feature of that kind behind the pieces the parcel overlaps. Pieces carry their sources as JSON text; parsing
it per batch chunk cost ≈ 30 % of a batch's CPU. Here every distinct ``sources`` text is parsed once
(pyarrow's JSON reader, in columns), each (text, kind) gets the id of its *feature set* (a sorted tuple of
'layer:feature_id'; many pieces share one: a zone cut into many pieces), and a batch looks feature sets up by
array indexing. ``save``/``load`` keep the result beside the version in the data directory as parquet, so a
second run (and every dask worker) parses no JSON at all.

Set id 0 is the empty set: a kind a piece has without a source entry of that kind (the engine reports no
feature ids for it).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import tempfile
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FORMAT = "one-blueprint/piece-feature-sets/1"


def dumps(values: tuple[str, ...] | list[str]) -> str:
    """json.dumps(list(values)) with its defaults (ensure_ascii, ", "), via the C string encoder."""
    return "[" + ", ".join(map(encode_basestring_ascii, values)) + "]"


@dataclass
class FeatureSets:
    """Feature sets of a blueprint's pieces, keyed by (distinct sources text, kind name)."""

    source_code: NDArray[np.int64]  # per piece: index of its distinct `sources` text
    text_kind: NDArray[np.int64]  # sorted source code × len(kinds) + kind: (text, kind) with sources
    text_set: NDArray[np.int64]  # its feature set id
    kinds: list[str]  # kind names, indexed as in text_kind
    texts: list[str]  # per set id: the batch table's JSON text of the sorted feature ids
    fingerprint: str  # sha256 of the piece ids: the pieces these codes belong to
    names: list[str]  # every 'layer:feature_id', sorted: a feature's code is its position
    set_start: NDArray[np.int64]  # set s holds the codes set_codes[set_start[s]:set_start[s + 1]]
    set_codes: NDArray[np.int64]

    def sets_of(self, pieces: NDArray[np.int64], kinds: NDArray[np.int64], kind_names: list[str]
                ) -> NDArray[np.int64]:
        """Feature set id per (piece, kind); ``kinds`` index ``kind_names`` (the screener's kinds)."""
        position = {name: i for i, name in enumerate(self.kinds)}
        own = np.asarray([position.get(name, -1) for name in kind_names], dtype=np.int64)
        mine = own[kinds]
        key = self.source_code[pieces] * len(self.kinds) + mine
        at = np.minimum(np.searchsorted(self.text_kind, key), max(len(self.text_kind) - 1, 0))
        found = (mine >= 0) & (len(self.text_kind) > 0)
        if len(self.text_kind):
            found &= self.text_kind[at] == key
        return np.where(found, self.text_set[at] if len(self.text_kind) else 0, 0)

    def unions(self, owner: NDArray[np.int64], set_ids: NDArray[np.int64], n: int) -> list[str]:
        """For each of ``n`` owners, the JSON text of the union of its sets (``owner`` sorted)."""
        sizes = self.set_start[set_ids + 1] - self.set_start[set_ids]
        first = self.set_start[set_ids]
        at = np.repeat(first - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
        u = max(len(self.names), 1)
        pair = sorted_unique(np.repeat(owner, sizes) * u + self.set_codes[at])  # sorted codes: sorted names
        who, code = pair // u, pair % u
        cut = np.searchsorted(who, np.arange(n + 1))
        names = self.names
        return [dumps([names[c] for c in code[a:b].tolist()]) for a, b in itertools.pairwise(cut.tolist())]


def sorted_unique(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """``np.unique`` of integers by sort and drop-repeats: numpy ≥ 2.3's hash-based ``np.unique`` took ≈ 100×
    longer on the batch's few million int64 keys (3 s vs 25 ms per call measured); same values, same order."""
    ordered = np.sort(np.asarray(values, dtype=np.int64))
    if len(ordered) < 2:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def fingerprint(piece_ids: NDArray[np.object_]) -> str:
    return hashlib.sha256("\n".join(map(str, piece_ids.tolist())).encode()).hexdigest()


def build(piece_ids: NDArray[np.object_], sources: NDArray[np.object_]) -> FeatureSets:
    """Parse every distinct sources text once and intern its feature sets per kind."""
    codes, uniq = pd.factorize(pd.Series(sources, dtype=object).fillna("[]"))
    texts = [str(t) or "[]" for t in np.asarray(uniq, dtype=object).tolist()]
    flat = _flat_arrow(texts)
    if flat is None:
        flat = _flat_python(texts)
    parent, kind, feature = flat
    kind_codes, kind_names = pd.factorize(kind, sort=True)
    kinds = [str(k) for k in np.asarray(kind_names, dtype=object).tolist()]
    text_kind, text_set, set_texts, names, set_start, set_codes = _intern(
        parent * max(len(kinds), 1) + np.asarray(kind_codes, np.int64), feature)
    return FeatureSets(np.asarray(codes, dtype=np.int64), text_kind, text_set, kinds, set_texts,
                       fingerprint(piece_ids), names, set_start, set_codes)


def _intern(key: NDArray[np.int64], feature: NDArray[np.object_]) -> tuple[
        NDArray[np.int64], NDArray[np.int64], list[str], list[str], NDArray[np.int64], NDArray[np.int64]]:
    """Group the features by key into sorted, de-duplicated tuples and give each distinct tuple an id
    (0: the empty set; 1…U: one feature; then the larger sets)."""
    fcode, funiq = pd.factorize(feature, sort=True)  # sorted: code order = code-point order, as sorted()
    names = np.asarray(funiq, dtype=object).tolist()
    u = max(len(names), 1)
    pair = sorted_unique(key * u + np.asarray(fcode, dtype=np.int64))
    pkey, pfeat = pair // u, pair % u
    if not len(pair):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), ["[]"], names, np.zeros(2, np.int64), np.zeros(
            0, np.int64)
    starts = np.flatnonzero(np.r_[True, pkey[1:] != pkey[:-1]])
    sizes = np.diff(np.r_[starts, len(pair)])
    set_id = 1 + pfeat[starts]
    texts = ["[]"] + [dumps((name,)) for name in names]
    interned: dict[tuple[int, ...], int] = {}
    multi: list[int] = []
    multi_sizes: list[int] = []
    for i in np.flatnonzero(sizes > 1).tolist():
        members = tuple(pfeat[starts[i]:starts[i] + sizes[i]].tolist())
        found = interned.get(members)
        if found is None:
            found = interned[members] = len(texts)
            texts.append(dumps([names[m] for m in members]))
            multi.extend(members)
            multi_sizes.append(len(members))
        set_id[i] = found
    # members of every set: 0 none, 1…U one feature each (its code), then the larger sets
    set_start = np.concatenate([[0, 0], np.arange(1, len(names) + 1), len(names) + np.cumsum(multi_sizes)])
    set_codes = np.concatenate([np.arange(len(names)), np.asarray(multi, dtype=np.int64)])
    return (pkey[starts], set_id.astype(np.int64), texts, names, set_start.astype(np.int64),
            set_codes.astype(np.int64))


def _flat_python(texts: list[str]) -> tuple[NDArray[np.int64], NDArray[np.object_], NDArray[np.object_]]:
    """(text index, kind, 'layer:feature_id') per source entry: one json.loads, the engine's reading."""
    parent: list[int] = []
    kind: list[str] = []
    feature: list[str] = []
    for i, sources in enumerate(json.loads("[" + ",".join(texts) + "]")):
        for src in sources:
            parent.append(i)
            kind.append(str(src.get("kind")))
            feature.append(f"{src.get('layer', '')}:{src.get('feature_id', '')}")
    return (np.asarray(parent, dtype=np.int64), np.asarray(kind, dtype=object),
            np.asarray(feature, dtype=object))


@functools.cache
def _sources_schema() -> Any:
    """The part of a piece's `sources` JSON the feature ids need, all text."""
    import pyarrow as pa

    fields = [(f, pa.string()) for f in ("kind", "layer", "feature_id")]
    return pa.schema([("s", pa.list_(pa.struct(fields)))])


Flat = tuple[NDArray[np.int64], NDArray[np.object_], NDArray[np.object_]]


def _flat_arrow(texts: list[str]) -> Flat | None:
    """What _flat_python gives, parsed by pyarrow's JSON reader. None — use _flat_python — for any text it
    would not read the same way: numbers or nulls where text is expected, missing fields, line breaks."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as paj

    if any("\n" in t for t in texts):
        return None
    body = ("\n".join('{"s":' + t + "}" for t in texts) + "\n").encode()
    try:
        table = paj.read_json(pa.py_buffer(body), parse_options=paj.ParseOptions(
            explicit_schema=_sources_schema(), unexpected_field_behavior="ignore"),
            read_options=paj.ReadOptions(block_size=max(1 << 20, min(len(body) + 1, 1 << 26))))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    column = table.column("s").combine_chunks()
    if table.num_rows != len(texts) or column.null_count:
        return None
    flat = pc.list_flatten(column)
    kind, layer, feature = flat.field("kind"), flat.field("layer"), flat.field("feature_id")
    if flat.null_count or kind.null_count or layer.null_count or feature.null_count:
        return None  # Python reads a missing field as '' (kind: 'None') but an explicit null as 'None'
    parent = np.asarray(pc.list_parent_indices(column).to_numpy(), dtype=np.int64)
    text = pc.binary_join_element_wise(layer, feature, ":").to_numpy(zero_copy_only=False)
    return parent, kind.to_numpy(zero_copy_only=False), text


# --- beside the version in the data directory ------------------------------------------------------

def _tables(sets: FeatureSets) -> tuple[Any, ...]:
    import pyarrow as pa

    meta = {b"format": FORMAT.encode(), b"fingerprint": sets.fingerprint.encode(),
            b"kinds": json.dumps(sets.kinds).encode()}
    pieces = pa.table({"source": pa.array(sets.source_code, pa.int32())}).replace_schema_metadata(meta)
    keys = pa.table({"text_kind": pa.array(sets.text_kind, pa.int64()),
                     "set": pa.array(sets.text_set, pa.int32())})
    texts = pa.table({"text": pa.array(sets.texts, pa.string()),
                      "start": pa.array(sets.set_start[:-1], pa.int64())})
    names = pa.table({"name": pa.array(sets.names, pa.string())})
    codes = pa.table({"code": pa.array(sets.set_codes, pa.int64())})
    return pieces, keys, texts, names, codes


NAMES = ("piece_sources.parquet", "source_sets.parquet", "feature_sets.parquet", "features.parquet",
         "set_members.parquet")


def save(sets: FeatureSets, directory: Path) -> None:
    """Write the three tables into ``directory`` (each atomically: a reader sees old or new files)."""
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    # the fingerprinted table goes last: until it is there, load() finds no (or an old) fingerprint
    for table, name in reversed(list(zip(_tables(sets), NAMES, strict=True))):
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        os.close(handle)
        try:
            pq.write_table(table, temp)
            os.chmod(temp, 0o644)
            os.replace(temp, directory / name)
        finally:
            Path(temp).unlink(missing_ok=True)


def load(directory: Path, piece_ids: NDArray[np.object_] | None = None, *,
         expect: str | None = None) -> FeatureSets | None:
    """The saved feature sets, or None when they are missing, unreadable or of other pieces (their
    fingerprint differs from ``expect`` or from that of ``piece_ids``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pieces = pq.read_table(directory / NAMES[0])
        meta = pieces.schema.metadata or {}
        if meta.get(b"format") != FORMAT.encode():
            return None
        found = meta[b"fingerprint"].decode()
        if expect is None and piece_ids is not None:
            expect = fingerprint(piece_ids)
        if expect is not None and found != expect:
            return None
        keys = pq.read_table(directory / NAMES[1])
        sets = pq.read_table(directory / NAMES[2])
        names = pq.read_table(directory / NAMES[3]).column("name").to_pylist()
        codes = pq.read_table(directory / NAMES[4]).column("code").to_numpy().astype(np.int64)
        kinds = json.loads(meta[b"kinds"])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    start = np.append(sets.column("start").to_numpy().astype(np.int64), len(codes))
    return FeatureSets(pieces.column("source").to_numpy().astype(np.int64),
                       keys.column("text_kind").to_numpy().astype(np.int64),
                       keys.column("set").to_numpy().astype(np.int64), kinds, sets.column("text").to_pylist(),
                       found, names, start, codes)


def load_or_build(directory: Path | None, piece_ids: NDArray[np.object_], sources: NDArray[np.object_]
                  ) -> FeatureSets:
    """From ``directory`` when it holds this blueprint's sets; else built (and saved there when given)."""
    if directory is not None:
        found = load(directory, piece_ids)
        if found is not None:
            return found
    built = build(piece_ids, sources)
    if directory is not None:
        try:
            save(built, directory)
        except OSError:
            pass  # a read-only data directory: the sets still serve this run
    return built
