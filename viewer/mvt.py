"""viewer.mvt: Mapbox Vector Tile (MVT 2.1) encoding of polygon layers, vectorised with numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

EXTENT = 4096  # tile units per tile side (the MVT default)
MOVE_TO, LINE_TO, CLOSE_PATH = 1, 2, 7
POLYGON = 3  # Feature.GeomType
# from this many features on, a layer's Feature messages are framed with numpy (3–4× faster on the whole-city
# tile); below it the plain loop is faster (measured: bench_tile_archive, z9 vs z14 tiles)
VECTOR_FRAMING_MIN = 64

Features = Sequence[tuple[shapely.Geometry, dict[str, Any]]]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of non-negative integers, vectorised: (bytes as uint8, byte offset of each value)."""
    v = values.astype(np.uint64)
    nbytes = _varint_len(v)
    starts = np.zeros(len(v) + 1, dtype=np.int64)
    np.cumsum(nbytes, out=starts[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint8)
    for k in range(int(nbytes.max(initial=1))):
        has = nbytes > k
        byte = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = nbytes[has] > k + 1
        out[starts[:-1][has] + k] = (byte | np.where(more, np.uint64(0x80), np.uint64(0))).astype(np.uint8)
    return out, starts


def _zigzag(d: np.ndarray) -> np.ndarray:
    return (d << 1) ^ (d >> 63)


def geometry_commands(geoms: np.ndarray, bounds: tuple[float, float, float, float],
                      extent: int = EXTENT) -> tuple[np.ndarray, np.ndarray]:
    """MVT polygon command integers of every geometry: (ints, start of each geometry's ints, len+1).

    Coordinates are quantised to the tile grid (y down), consecutive duplicates dropped, rings that
    collapse to no area dropped (a hole with its exterior), exterior rings wound clockwise on screen
    (positive area with y down) and holes the other way, as the MVT 2.1 specification requires.
    """
    n_geoms = len(geoms)
    parts, part_geom = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, point_ring = shapely.get_coordinates(rings, return_index=True)
    minx, miny, maxx, maxy = bounds
    px = np.rint((coords[:, 0] - minx) * (extent / (maxx - minx))).astype(np.int64)
    py = np.rint((maxy - coords[:, 1]) * (extent / (maxy - miny))).astype(np.int64)
    # drop consecutive duplicates within a ring, then the closing point of each ring
    same = np.zeros(len(px), dtype=bool)
    same[1:] = (px[1:] == px[:-1]) & (py[1:] == py[:-1]) & (point_ring[1:] == point_ring[:-1])
    last = np.ones(len(px), dtype=bool)
    last[:-1] = point_ring[1:] != point_ring[:-1]
    keep = ~same & ~last
    px, py, point_ring = px[keep], py[keep], point_ring[keep]
    n_rings = len(rings)
    count = np.bincount(point_ring, minlength=n_rings)
    start = np.zeros(n_rings + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])
    # shoelace per ring (y down: clockwise on screen is positive)
    nxt = np.arange(len(px)) + 1
    wrap = nxt == start[1:][point_ring]
    nxt[wrap] = start[:-1][point_ring[wrap]]
    cross = px * py[nxt] - px[nxt] * py
    area2 = np.bincount(point_ring, weights=cross.astype(np.float64), minlength=n_rings)
    exterior = np.ones(n_rings, dtype=bool)
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    ring_ok = (count >= 3) & (area2 != 0)
    # a hole whose exterior collapsed goes with it
    part_ok = np.zeros(len(parts), dtype=bool)
    part_ok[ring_part[exterior & ring_ok]] = True
    ring_ok &= part_ok[ring_part]
    flip = np.where(exterior, area2 < 0, area2 > 0)
    # point order within kept rings (reversed where the winding is wrong)
    kept_rings = np.flatnonzero(ring_ok)
    k_count = count[kept_rings]
    k_start = start[:-1][kept_rings]
    ring_of = np.repeat(np.arange(len(kept_rings)), k_count)
    first = np.zeros(len(kept_rings) + 1, dtype=np.int64)
    np.cumsum(k_count, out=first[1:])
    j = np.arange(int(first[-1])) - first[:-1][ring_of]
    j = np.where(flip[kept_rings][ring_of], k_count[ring_of] - 1 - j, j)
    order = k_start[ring_of] + j
    qx, qy = px[order], py[order]
    geom_of_ring = part_geom[ring_part[kept_rings]]
    geom_of_point = geom_of_ring[ring_of]
    # deltas from the previous point, restarting at (0, 0) for each feature
    dx = np.diff(qx, prepend=0)
    dy = np.diff(qy, prepend=0)
    new_geom = np.ones(len(qx), dtype=bool)
    new_geom[1:] = geom_of_point[1:] != geom_of_point[:-1]
    dx[new_geom] = qx[new_geom]
    dy[new_geom] = qy[new_geom]
    # layout per ring: MoveTo x0 y0 LineTo(n-1) x1 y1 ... ClosePath  → 2n + 3 integers
    out_len = 2 * k_count + 3
    out_start = np.zeros(len(kept_rings) + 1, dtype=np.int64)
    np.cumsum(out_len, out=out_start[1:])
    ints = np.empty(int(out_start[-1]), dtype=np.int64)
    rs = out_start[:-1]
    ints[rs] = (1 << 3) | MOVE_TO
    ints[rs + 3] = ((k_count - 1) << 3) | LINE_TO
    ints[rs + 2 * k_count + 2] = (1 << 3) | CLOSE_PATH
    jj = np.arange(int(first[-1])) - first[:-1][ring_of]  # position in the emitted order
    pos = rs[ring_of] + np.where(jj == 0, 1, 2 + 2 * jj)
    ints[pos] = _zigzag(dx)
    ints[pos + 1] = _zigzag(dy)
    # where each geometry's integers start (geometries with no ring left get an empty run)
    geom_first_ring = np.searchsorted(geom_of_ring, np.arange(n_geoms + 1), side="left")
    return ints, out_start[geom_first_ring]


def _value(v: Any) -> bytes:
    if isinstance(v, bool):
        return _key(7, 0) + _varint(int(v))
    if isinstance(v, int):
        return _key(6, 0) + _varint((v << 1) ^ (v >> 63))
    if isinstance(v, float):
        return _key(3, 1) + np.float64(v).tobytes()
    return _bytes_field(1, str(v).encode("utf-8"))


def _encoded_geometries(geoms: np.ndarray, bounds: tuple[float, float, float, float],
                        extent: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(varint bytes of every geometry's commands, start and end byte of each geometry)."""
    ints, starts = geometry_commands(geoms, bounds, extent)
    data, offsets = varints(ints)
    return data, offsets[starts[:-1]], offsets[starts[1:]]


def _values_table(values: list[Any]) -> bytes:
    """Every ``Layer.values`` field, in order; runs of integers (a distinct area per feature) vectorised."""
    out = bytearray()
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and type(values[j]) is int:
            j += 1
        if j - i >= 8:
            out += _int_values(np.asarray(values[i:j], dtype=np.int64))
            i = j
        else:
            out += _bytes_field(4, _value(values[i]))
            i += 1
    return bytes(out)


def _int_values(v: np.ndarray) -> bytes:
    """``0x22 len 0x30 zigzag-varint`` per integer: a ``Value`` of ``sint_value``, at most 11 bytes long."""
    enc, off = varints(_zigzag(v))
    n = off[1:] - off[:-1]
    start = np.zeros(len(v) + 1, dtype=np.int64)
    np.cumsum(n + 3, out=start[1:])
    out = np.empty(int(start[-1]), dtype=np.uint8)
    at = start[:-1]
    out[at], out[at + 1], out[at + 2] = 0x22, (n + 1).astype(np.uint8), 0x30
    idx, run = _gather(off[:-1], off[:-1], n)
    out[at[run] + 3 + (idx - off[:-1][run])] = enc[idx]
    return out.tobytes()


def encode_layer(name: str, features: Features, bounds: tuple[float, float, float, float],
                 extent: int = EXTENT,
                 encoded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 skip: frozenset[str] = frozenset()) -> bytes:
    """One MVT ``Layer`` message of polygon features (geometries in the same CRS as ``bounds``);
    ``encoded``: their geometries already encoded (:func:`encode_tile` does every layer's at once);
    ``skip``: property keys left out."""
    if not features:
        return b""
    if encoded is None:
        encoded = _encoded_geometries(np.array([g for g, _ in features], dtype=object), bounds, extent)
    data, geom_a, geom_b = encoded
    kept = np.flatnonzero(geom_b > geom_a)  # a feature with nothing left at this zoom is not sent
    if len(kept) == 0:
        return b""
    keys: dict[str, int] = {}
    values: dict[tuple[type, Any], int] = {}
    tags: list[int] = []
    tag_counts = np.zeros(len(kept), dtype=np.int64)
    for j, i in enumerate(kept.tolist()):
        before = len(tags)
        for k, v in features[i][1].items():
            if v is None or k in skip:
                continue
            tags.append(keys.setdefault(k, len(keys)))
            tags.append(values.setdefault((type(v), v), len(values)))
        tag_counts[j] = len(tags) - before
    body = bytearray(_bytes_field(1, name.encode("utf-8")))
    if len(kept) >= VECTOR_FRAMING_MIN:
        body += _features(data, geom_a[kept], geom_b[kept], np.asarray(tags, dtype=np.int64), tag_counts)
    else:  # a few features: numpy's per-call cost outweighs the loop (most tiles at street zooms)
        t = 0
        for j, i in enumerate(kept.tolist()):
            # tag indices are small: one byte each below 128 (the usual case), else a varint
            run = tags[t:t + tag_counts[j]]
            tag_field = bytes(run) if max(run, default=0) < 0x80 else b"".join(_varint(v) for v in run)
            t += int(tag_counts[j])
            feature = ((_bytes_field(2, tag_field) if tag_field else b"") + _key(3, 0) + _varint(POLYGON)
                       + _bytes_field(4, data[int(geom_a[i]):int(geom_b[i])].tobytes()))
            body += _bytes_field(2, feature)
    for k in keys:
        body += _bytes_field(3, k.encode("utf-8"))
    body += _values_table([v for (_, v) in values])
    body += _key(5, 0) + _varint(extent) + _key(15, 0) + _varint(2)
    return _bytes_field(3, bytes(body))


def _varint_len(n: np.ndarray) -> np.ndarray:
    """Bytes of the protobuf varint of each non-negative integer (as many passes as the largest needs:
    a tile's small arrays made ten passes the bulk of the encoding)."""
    out = np.ones(len(n), dtype=np.int64)
    top = int(n.max()).bit_length() if len(n) else 0
    for k in range(1, max(1, -(-top // 7))):
        out += n >= np.uint64(1 << (7 * k)) if n.dtype == np.uint64 else n >= (1 << (7 * k))
    return out


def _gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the runs ``source[starts[i]:starts[i] + lengths[i]]`` in turn, and the run of each."""
    run = np.repeat(np.arange(len(lengths)), lengths)
    first = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=first[1:])
    return starts[run] + (np.arange(int(first[-1])) - first[:-1][run]), run


def _features(data: np.ndarray, geom_a: np.ndarray, geom_b: np.ndarray, tags: np.ndarray,
              tag_counts: np.ndarray) -> bytes:
    """Every ``Feature`` field of a layer at once (numpy, no per-feature Python): for each feature
    ``0x12 len [0x12 len tags] 0x18 0x03 0x22 len geometry`` (tags, type POLYGON, geometry)."""
    tag_bytes, tag_off = varints(tags)
    tag_first = np.zeros(len(tag_counts) + 1, dtype=np.int64)
    np.cumsum(tag_counts, out=tag_first[1:])
    tag_len = tag_off[tag_first[1:]] - tag_off[tag_first[:-1]]
    geom_len = geom_b - geom_a
    tag_field = np.where(tag_len > 0, 1 + _varint_len(tag_len) + tag_len, 0)
    inner = tag_field + 3 + _varint_len(geom_len) + geom_len  # 3: 0x18 0x03 0x22
    outer = 1 + _varint_len(inner) + inner
    start = np.zeros(len(outer) + 1, dtype=np.int64)
    np.cumsum(outer, out=start[1:])
    out = np.zeros(int(start[-1]), dtype=np.uint8)
    pos = start[:-1].copy()

    def put_varints(at: np.ndarray, values: np.ndarray) -> np.ndarray:
        enc, off = varints(values)
        idx, run = _gather(off[:-1], off[:-1], off[1:] - off[:-1])
        out[at[run] + (idx - off[:-1][run])] = enc[idx]
        return at + (off[1:] - off[:-1])

    out[pos] = 0x12  # Layer.features
    pos = put_varints(pos + 1, inner)
    has = tag_len > 0
    out[pos[has]] = 0x12  # Feature.tags (packed)
    pos[has] = put_varints(pos[has] + 1, tag_len[has])
    idx, run = _gather(tag_off[tag_first[:-1]], tag_off[tag_first[:-1]], tag_len)
    out[pos[run] + (idx - tag_off[tag_first[:-1]][run])] = tag_bytes[idx]
    pos = pos + tag_len
    out[pos], out[pos + 1], out[pos + 2] = 0x18, POLYGON, 0x22  # Feature.type, Feature.geometry
    pos = put_varints(pos + 3, geom_len)
    idx, run = _gather(geom_a, geom_a, geom_len)
    out[pos[run] + (idx - geom_a[run])] = data[idx]
    return out.tobytes()


def encode_tile(layers: Sequence[tuple[str, Features]], bounds: tuple[float, float, float, float],
                extent: int = EXTENT, skip: dict[str, frozenset[str]] | None = None) -> bytes:
    """A whole MVT tile: one named layer per entry, empty layers left out (an empty tile is b"").

    Every layer's geometries are encoded in one vectorised pass (a pass per layer cost numpy's per-call
    overhead a dozen times per tile: most of the build at street zooms); the bytes are the same.
    ``skip``: per layer, property keys left out."""
    layers = [(name, feats) for name, feats in layers if feats]
    if not layers:
        return b""
    geoms = np.array([g for _, feats in layers for g, _ in feats], dtype=object)
    data, geom_a, geom_b = _encoded_geometries(geoms, bounds, extent)
    out, first = [], 0
    for name, feats in layers:
        last = first + len(feats)
        out.append(encode_layer(name, feats, bounds, extent, (data, geom_a[first:last], geom_b[first:last]),
                                (skip or {}).get(name, frozenset())))
        first = last
    return b"".join(out)
