"""blueprint.batch_conflicts: out-of-core conflicts, dissolved per batch and joined across batch lines.

A disputed area lying inside one batch's band is dissolved, described and measured by that batch's task;
only the partial areas touching a line shared with the next batch go back to the driver, which dissolves
them once more (a coverage union of areas that share their edges exactly) and merges their feature lists.
The table equals :func:`blueprint.merge._conflict_rows` on the whole blueprint: same areas (as geometry),
ids, layers, areas in m² and order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from blueprint.conflicts import (
    Sides,
    _conflicts_frame,
    _dissolve,
    add_conflict_rows,
    dispute_areas,
    dispute_codes,
    new_conflict_columns,
    piece_areas,
)
from blueprint.coverage import GRID_M
from blueprint.merge import _Combo, _Features, _Pieces
from layers.catalogue import Catalogue

Dispute = tuple[str, str, str]


def _take(sides: Sides, mask: np.ndarray) -> Sides:
    rows = np.flatnonzero(mask).tolist()
    (a, b), (c, d) = sides
    return ([a[i] for i in rows], [b[i] for i in rows]), ([c[i] for i in rows], [d[i] for i in rows])


def batch_conflicts(pieces: _Pieces, points: np.ndarray, feats: _Features, combos: dict[int, _Combo],
                    catalogue: Catalogue, crs: Any, band: tuple[float, float]) -> dict[str, Any]:
    """One batch's conflicts: rows of the areas inside its band (``band``: the y of the lines it shares
    with its neighbours, ±inf where it has none) and the partial areas touching those lines."""
    cols = new_conflict_columns()
    partial: list[tuple[Dispute, bytes, Sides]] = []
    low, high = band[0] + GRID_M / 2, band[1] - GRID_M / 2
    for dispute, codes in dispute_codes(combos):
        areas, sides = dispute_areas(pieces, points, feats, codes, dispute[0], dispute[1])
        box = shapely.bounds(areas)
        open_ = (box[:, 1] <= low) | (box[:, 3] >= high)
        done = ~open_
        add_conflict_rows(cols, dispute, areas[done], _take(sides, done),
                          piece_areas(areas[done], crs).tolist(), catalogue)
        if open_.any():
            partial.append((dispute, shapely.to_wkb(areas[open_]), _take(sides, open_)))
    geoms = np.asarray(cols.pop("geometry"), dtype=object)
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms)) if len(geoms) else np.empty((0, 2))
    return {"rows": cols, "wkb": shapely.to_wkb(geoms) if len(geoms) else [], "xy": xy, "partial": partial}


def _union_lists(lists: Sequence[list[str]], owner: np.ndarray, n: int) -> list[list[str]]:
    """Per merged area ``0..n-1``: the sorted distinct labels of its partial areas' lists."""
    sets: list[set[str]] = [set() for _ in range(n)]
    for labels, o in zip(lists, owner.tolist(), strict=True):
        sets[o].update(labels)
    return [sorted(s) for s in sets]


def join_conflicts(results: Sequence[dict[str, Any]], catalogue: Catalogue, crs: Any) -> gpd.GeoDataFrame:
    """The conflict table from every batch's rows and partial areas (see :func:`batch_conflicts`)."""
    cols = new_conflict_columns()
    geoms: list[np.ndarray] = []
    xys: list[np.ndarray] = []
    by_dispute: dict[Dispute, list[tuple[bytes, Sides]]] = {}
    for r in results:
        for key, values in r["rows"].items():
            cols[key].extend(values)
        if len(r["wkb"]):
            geoms.append(np.asarray(shapely.from_wkb(r["wkb"]), dtype=object))
        xys.append(r["xy"])
        for dispute, wkb, sides in r["partial"]:
            by_dispute.setdefault(dispute, []).append((wkb, sides))
    cols["geometry"] = list(np.concatenate(geoms)) if geoms else []
    for dispute, found in sorted(by_dispute.items()):
        parts = np.concatenate([np.asarray(shapely.from_wkb(w), dtype=object) for w, _ in found])
        merged = _dissolve(parts)
        # each partial area lies inside exactly one merged area: its interior point tells which
        m_i, p_i = shapely.STRtree(shapely.point_on_surface(parts)).query(merged, predicate="contains")
        owner = np.empty(len(parts), dtype=np.int64)
        owner[p_i] = m_i
        columns = [[lst for _w, s in found for lst in s[side][what]] for side in (0, 1) for what in (0, 1)]
        ids_w, names_w, ids_l, names_l = (_union_lists(c, owner, len(merged)) for c in columns)
        add_conflict_rows(cols, dispute, merged, ((ids_w, names_w), (ids_l, names_l)),
                          piece_areas(merged, crs).tolist(), catalogue)
        xys.append(shapely.get_coordinates(shapely.point_on_surface(merged)))
    xy = np.concatenate(xys) if xys else np.empty((0, 2))
    return _conflicts_frame(cols, crs, points=xy)
