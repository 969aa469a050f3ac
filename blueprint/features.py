"""blueprint.features: attributed features (控规地块, 区域评估) carried per feature, and their 差异图斑.

Kinds with attribute ``fields`` in the catalogue are not cut into the blueprint's partition (a plan
parcel's limits belong to the whole parcel, and hundreds of them would only fragment the pieces).
A blueprint keeps them as ``Blueprint.features``: one row per source feature with ``kind``, ``layer``,
``source``, ``feature_id``, the canonical attributes of :data:`layers.attributes.FIELD_SPECS` present
in its layer, and the geometry. They are not stored twice: a version records the names of those
layers in ``meta["feature_layers"]`` and :class:`blueprint.store.BlueprintStore` reads them back from
the layer store, checking each checksum against the version's layer refs (a layer that went into a
published version can be neither replaced nor deleted).

:func:`plan_conflicts` lists where a detailed-plan construction parcel contradicts a control line
(``[[plan_contradictions]]`` of the precedence): its part on the red line or the farmland, or outside
the urban development boundary, dissolved into connected areas, the line prevailing. Areas narrower
than the merge tolerance are edge residue and dropped, as the merge absorbs slivers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from blueprint.errors import MergeInputError
from blueprint.precedence import PlanContradiction, Precedence
from layers.attributes import FIELD_SPECS
from layers.catalogue import Catalogue
from layers.crs import assert_same_crs
from layers.land_use import load_land_use_codes
from layers.model import PlanLayer

FEATURE_COLUMNS = ["kind", "layer", "source", "feature_id", *FIELD_SPECS]
NOISE_M2 = 1e-4


def condition_features(layers: Sequence[PlanLayer], crs: CRS) -> gpd.GeoDataFrame:
    """One row per feature of the attributed ``layers`` (their canonical attributes and geometry)."""
    frames = []
    for layer in layers:
        frame = layer.frame
        data = {
            "kind": layer.kind,
            "layer": layer.name,
            "source": layer.source,
            "feature_id": frame["feature_id"].astype(str).to_numpy(),
        }
        for column in FIELD_SPECS:
            values = frame[column].to_numpy(dtype=object) if column in frame.columns else [None] * len(frame)
            data[column] = [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
        frames.append(
            gpd.GeoDataFrame(
                pd.DataFrame(data, index=range(len(frame))),
                geometry=gpd.GeoSeries(frame.geometry.values, crs=crs),
                crs=crs,
            )
        )
    if not frames:
        return gpd.GeoDataFrame(
            {c: [] for c in FEATURE_COLUMNS}, geometry=gpd.GeoSeries([], crs=crs), crs=crs
        )
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)


def check_feature_layers(layers: Sequence[PlanLayer], reference: Any) -> None:
    """Attributed layers need a feature id and the blueprint's CRS, like every plan layer."""
    for layer in layers:
        if "feature_id" not in layer.frame.columns:
            raise MergeInputError(f"layer '{layer.name}' ({layer.kind}) has no feature_id column")
        assert_same_crs(reference, layer.frame, what=f"layer '{layer.name}' and the blueprint")


def plan_conflicts(
    features: gpd.GeoDataFrame,
    pieces: gpd.GeoDataFrame,
    precedence: Precedence,
    catalogue: Catalogue,
    line_layers: dict[str, list[str]],
    tolerance_m: float,
    crs: CRS,
) -> gpd.GeoDataFrame:
    """The 差异图斑 of detailed-plan parcels against the control lines (conflict columns, no ids)."""
    rows: list[dict[str, Any]] = []
    covered = _covered_sets(pieces)
    for rule in precedence.plan_contradictions:
        if rule.line not in line_layers:
            continue  # no such line in this blueprint: nothing to lie on or outside of
        rows.extend(
            _rule_rows(rule, features, pieces, covered, catalogue, line_layers[rule.line], tolerance_m)
        )
    columns = [
        "kind_a",
        "kind_b",
        "layer_a",
        "layer_b",
        "feature_ids",
        "rule",
        "resolution",
        "winner",
        "area_m2",
    ]
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    frame = pd.DataFrame(rows)
    return gpd.GeoDataFrame(
        frame[columns], geometry=gpd.GeoSeries(frame["geometry"].values, crs=crs), crs=crs
    )


def _covered_sets(pieces: gpd.GeoDataFrame) -> list[frozenset[str]]:
    parsed: dict[str, frozenset[str]] = {}
    return [parsed.setdefault(text, frozenset(json.loads(text))) for text in pieces["covered_by"].astype(str)]


def _rule_rows(
    rule: PlanContradiction,
    features: gpd.GeoDataFrame,
    pieces: gpd.GeoDataFrame,
    covered: list[frozenset[str]],
    catalogue: Catalogue,
    line_names: list[str],
    tolerance_m: float,
) -> list[dict[str, Any]]:
    codes = load_land_use_codes()
    plans = features[(features["kind"] == rule.kind) & features["land_use"].notna()]
    plans = plans[[codes.in_group(str(c), rule.land_use) for c in plans["land_use"]]]
    if plans.empty:
        return []
    on_line = np.flatnonzero([rule.line in c for c in covered])
    line_geoms = np.asarray(pieces.geometry.values, dtype=object)[on_line]
    tree = shapely.STRtree(line_geoms)
    disputed, owners = [], []
    for geom, fid, layer in zip(plans.geometry.values, plans["feature_id"], plans["layer"], strict=True):
        near = tree.query(geom, predicate="intersects")
        local = shapely.union_all(line_geoms[near]) if len(near) else shapely.Polygon()
        part = shapely.intersection(geom, local) if rule.where == "on" else shapely.difference(geom, local)
        part = _polygonal(part)
        if part is not None:
            disputed.append(part)
            owners.append((str(fid), str(layer)))
    if not disputed:
        return []
    areas = [a for a in shapely.get_parts(shapely.union_all(disputed)) if _kept(a, tolerance_m)]
    sources = pieces["sources"].astype(str).to_numpy()[on_line]
    rows = []
    for area in sorted(areas, key=_position):
        plan_ids, plan_layers = _owners_of(area, disputed, owners)
        line_ids = _line_ids(area, tree, line_geoms, sources, rule.line) if rule.where == "on" else []
        line = catalogue[rule.line]
        rows.append(
            {
                "kind_a": rule.line,
                "kind_b": rule.kind,
                "layer_a": "; ".join(line_names),
                "layer_b": "; ".join(plan_layers),
                "feature_ids": json.dumps({rule.line: line_ids, rule.kind: plan_ids}, ensure_ascii=False),
                "rule": rule.rule,
                "resolution": f"{line.name_zh}优先 {rule.line} prevails",
                "winner": rule.line,
                "area_m2": float(area.area),
                "geometry": area,
            }
        )
    return rows


def _polygonal(geom: Any) -> Any:
    parts = [
        p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon") and p.area > NOISE_M2
    ]
    return shapely.union_all(parts) if parts else None


def _kept(area: Any, tolerance_m: float) -> bool:
    """Real disputed ground: above noise and wider than the merge tolerance."""
    if area.area <= NOISE_M2:
        return False
    return tolerance_m <= 0 or not shapely.buffer(area, -tolerance_m / 2).is_empty


def _position(area: Any) -> tuple[float, float]:
    point = shapely.point_on_surface(area)
    return round(point.y, 3), round(point.x, 3)


def _owners_of(area: Any, disputed: list[Any], owners: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    ids, layers = set(), set()
    for part, (fid, layer) in zip(disputed, owners, strict=True):
        if shapely.intersection(area, part).area > NOISE_M2:
            ids.add(fid)
            layers.add(layer)
    return sorted(ids), sorted(layers)


def _line_ids(
    area: Any, tree: shapely.STRtree, geoms: np.ndarray, sources: np.ndarray, kind: str
) -> list[str]:
    ids: set[str] = set()
    for i in tree.query(area, predicate="intersects").tolist():
        if shapely.intersection(area, geoms[i]).area <= NOISE_M2:
            continue
        ids.update(str(s["feature_id"]) for s in json.loads(sources[i]) if s["kind"] == kind)
    return sorted(ids)


def with_plan_conflicts(
    conflicts: gpd.GeoDataFrame,
    features: gpd.GeoDataFrame,
    pieces: gpd.GeoDataFrame,
    precedence: Precedence,
    catalogue: Catalogue,
    layers: Sequence[PlanLayer],
    tolerance_m: float,
    crs: CRS,
) -> gpd.GeoDataFrame:
    """The merge's conflict list with the detailed plans' 差异图斑 appended (ids continuing)."""
    lines: dict[str, list[str]] = {}
    for lay in layers:
        lines.setdefault(lay.kind, []).append(lay.name)
    extra = plan_conflicts(features, pieces, precedence, catalogue, lines, tolerance_m, crs)
    if extra.empty:
        return conflicts
    n = len(conflicts)
    extra.insert(0, "conflict_id", [f"C{i:06d}" for i in range(n + 1, n + len(extra) + 1)])
    columns = list(conflicts.columns)
    merged = pd.concat([conflicts, extra[columns]], ignore_index=True) if n else extra[columns]
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=crs)[columns]
