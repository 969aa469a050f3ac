"""blueprint.conflicts: 差异图斑 — disputed pieces dissolved into connected areas, described and ordered."""

from __future__ import annotations

import json
import re
from itertools import chain
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import CRS

from layers.areas import plane_zones, zone_areas
from layers.catalogue import Catalogue

if TYPE_CHECKING:  # merge imports this module; the types only
    from blueprint.merge import _Combo, _Features, _Pieces

CONFLICT_COLUMNS = ["conflict_id", "kind_a", "kind_b", "layer_a", "layer_b", "feature_ids", "rule",
                    "resolution", "winner", "area_m2", "geometry"]
PLAIN_ID = re.compile(r'[^"\\\x00-\x1f]*')  # encodes in JSON as itself (no quote, backslash, control)
NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # the same characters as an RE2 (arrow) pattern: json escapes them


def piece_areas(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """Plane areas (m²), each in the piece's own 3° zone (unchanged for pieces of the storage CRS's zone)."""
    return zone_areas(geoms, crs, plane_zones(geoms, crs))


def _resolution(winner: str, catalogue: Catalogue) -> str:
    return f"{catalogue[winner].name_zh}优先 {winner} prevails"


def _json_strings(texts: list[str]) -> list[str]:
    """``json.dumps(t, ensure_ascii=False)`` for each text, without the encoder for plain ones."""
    plain = PLAIN_ID.fullmatch
    return ['"' + t + '"' if plain(t) else json.dumps(t, ensure_ascii=False) for t in texts]


def _joined_json(lists: list[list[str]]) -> pa.Array:
    """``", ".join(_json_strings(x))`` for each list, by arrow kernels over all their texts at once."""
    flat = pa.array(list(chain.from_iterable(lists)), pa.string())
    special = pc.match_substring_regex(flat, NEEDS_ESCAPE).to_numpy(zero_copy_only=False).astype(bool)
    encoded = pc.binary_join_element_wise('"', flat, '"', "")
    if special.any():  # rare: a quote, backslash or control character for json to escape
        texts = encoded.to_pylist()
        for i in np.flatnonzero(special).tolist():
            texts[i] = json.dumps(flat[i].as_py(), ensure_ascii=False)
        encoded = pa.array(texts, pa.string())
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists], dtype=np.int64)]).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), encoded), ", ")


def dispute_codes(combos: dict[int, _Combo]) -> list[tuple[tuple[str, str, str], list[int]]]:
    """(winner, loser, rule) → the piece codes in that dispute, in dispute order."""
    by_dispute: dict[tuple[str, str, str], list[int]] = {}
    for code, combo in combos.items():
        for dispute in combo.disputes:
            by_dispute.setdefault(dispute, []).append(code)
    return sorted(by_dispute.items())


Sides = tuple[tuple[list[list[str]], list[list[str]]], tuple[list[list[str]], list[list[str]]]]


def dispute_areas(pieces: _Pieces, points: np.ndarray, feats: _Features, codes: list[int], winner: str,
                  loser: str) -> tuple[np.ndarray, Sides]:
    """The dissolved areas of the pieces with ``codes`` and, per area, the (feature ids, layer names)
    of the winner's then the loser's features covering it."""
    members = np.flatnonzero(np.isin(pieces.code, codes))
    areas = _dissolve(pieces.geoms[members])
    # each area prepared once against a tree of points (a point-within test per point would walk a
    # large area's whole outline every time)
    area_i, member_i = shapely.STRtree(points[members]).query(areas, predicate="contains")
    component = np.full(len(pieces.geoms), -1, dtype=np.int64)
    component[members[member_i]] = area_i
    won, lost = (_side(component, feats.kinds.index(kind), pieces, feats, len(areas))
                 for kind in (winner, loser))
    return areas, (won, lost)


def new_conflict_columns() -> dict[str, list[Any]]:
    return {c: [] for c in CONFLICT_COLUMNS[1:]}


def add_conflict_rows(cols: dict[str, list[Any]], dispute: tuple[str, str, str], areas: np.ndarray,
                      sides: Sides, area_m2: list[float], catalogue: Catalogue) -> None:
    """Append one dispute's areas to the conflict columns."""
    winner, loser, rule = dispute
    (ids_w, names_w), (ids_l, names_l) = sides
    n = len(areas)
    # json.dumps({winner: ids_w, loser: ids_l}, ensure_ascii=False), assembled from encoded parts
    head_w, head_l = (json.dumps(k, ensure_ascii=False) + ": [" for k in (winner, loser))
    cols["feature_ids"].extend(pc.binary_join_element_wise(
        "{" + head_w, _joined_json(ids_w), "], " + head_l, _joined_json(ids_l), "]}", "").to_pylist())
    cols["layer_a"].extend("; ".join(x) for x in names_w)
    cols["layer_b"].extend("; ".join(x) for x in names_l)
    for key, value in (("kind_a", winner), ("kind_b", loser), ("rule", rule),
                       ("resolution", _resolution(winner, catalogue)), ("winner", winner)):
        cols[key].extend([value] * n)
    cols["area_m2"].extend(area_m2)
    cols["geometry"].extend(areas.tolist())


def _conflict_rows(pieces: _Pieces, points: np.ndarray, feats: _Features, combos: dict[int, _Combo],
                   catalogue: Catalogue, crs: CRS) -> dict[str, list[Any]]:
    """The conflict table by column (rows in dispute order, then in dissolve order)."""
    cols = new_conflict_columns()
    for dispute, codes in dispute_codes(combos):
        areas, sides = dispute_areas(pieces, points, feats, codes, dispute[0], dispute[1])
        add_conflict_rows(cols, dispute, areas, sides, piece_areas(areas, crs).tolist(), catalogue)
    return cols


def _dissolve(geoms: np.ndarray) -> np.ndarray:
    """The connected areas of the pieces ``geoms`` (a valid coverage), each one polygon.

    A piece touching no other piece is an area by itself; only the rest go through the coverage union
    (exact on a valid coverage), whose cost grows faster than linearly with the number of pieces.
    """
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    joined = np.zeros(len(geoms), dtype=bool)
    joined[a[a != b]] = True
    alone = shapely.get_parts(geoms[~joined])  # pieces are polygons; parts keep the contract anyway
    if not joined.any():
        return np.asarray(alone)
    merged = np.asarray(shapely.get_parts(shapely.coverage_union_all(geoms[joined])))
    return np.concatenate([np.asarray(alone), merged])


def _side(component: np.ndarray, kind: int, pieces: _Pieces, feats: _Features,
          n: int) -> tuple[list[list[str]], list[list[str]]]:
    """Per disputed area: the sorted feature ids and layer names of one kind covering it."""
    comp = component[pieces.pair_piece]
    mask = (comp >= 0) & (feats.kind[pieces.pair_feature] == kind)
    c, f = comp[mask], pieces.pair_feature[mask]
    feature, f_inv = np.unique(f, return_inverse=True)
    ids = _grouped(c, f_inv, [feats.fid[i] for i in feature.tolist()], n)
    names = _grouped(c, f_inv, [feats.layers[li].name for li in feats.layer[feature].tolist()], n)
    return ids, names


def _grouped(group: np.ndarray, item: np.ndarray, labels: list[str], n: int) -> list[list[str]]:
    """Per group ``0..n-1``: the sorted distinct labels of its items (``labels[item]``)."""
    text, label_i = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    keys = np.unique(group * max(len(text), 1) + label_i[item]) if len(item) else np.empty(0, np.int64)
    g, t = np.divmod(keys, max(len(text), 1))
    starts = np.searchsorted(g, np.arange(n + 1)).tolist()
    sorted_text = text[t].tolist()
    return [sorted_text[starts[i]:starts[i + 1]] for i in range(n)]


def _conflicts_frame(cols: dict[str, list[Any]], crs: CRS,
                     points: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """The conflict table in its order; ``points``: each area's interior point (x, y) if known already."""
    n = len(cols["geometry"])
    if n == 0:
        return gpd.GeoDataFrame({c: [] for c in CONFLICT_COLUMNS[:-1]},
                                geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    pts = points if points is not None else shapely.get_coordinates(
        shapely.point_on_surface(np.asarray(cols["geometry"], dtype=object)))
    # order: rule, kind_a, kind_b, then the interior point (y, x) rounded to the millimetre
    disputes = list(zip(cols["rule"], cols["kind_a"], cols["kind_b"], strict=True))
    rank = {d: i for i, d in enumerate(sorted(set(disputes)))}
    ys = np.array([round(v, 3) for v in pts[:, 1].tolist()])
    xs = np.array([round(v, 3) for v in pts[:, 0].tolist()])
    order = np.lexsort((xs, ys, np.array([rank[d] for d in disputes]))).tolist()
    data: dict[str, Any] = {"conflict_id": [f"C{i:06d}" for i in range(1, n + 1)]}
    for c in CONFLICT_COLUMNS[1:-1]:
        data[c] = [cols[c][i] for i in order]
    geometry = gpd.GeoSeries(np.asarray(cols["geometry"], dtype=object)[order], crs=crs)
    return gpd.GeoDataFrame(data, geometry=geometry, crs=crs)[CONFLICT_COLUMNS]


