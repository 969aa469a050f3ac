"""Hand-made plan layers and blueprints for the storage tests (EPSG:4548, around the Tongling origin)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
from pyproj import CRS

from blueprint.model import Blueprint, LayerRef
from layers.model import PlanLayer, Repair
from tests.geoms import MULTIPART, WITH_HOLE, square

WORK = CRS.from_epsg(4548)


def farmland_layer(name: str = "永久基本农田2024", checksum: str = "c0ffee") -> PlanLayer:
    """Three features: a holed polygon, a multipolygon and a square; mixed attribute types."""
    frame = gpd.GeoDataFrame(
        {
            "feature_id": ["F1", "F2", "F3"],
            "名称": ["基本农田保护区", "铜官区 农田", None],
            "dlbm": ["0101", "0102", "0103"],
            "area": [1.5, np.nan, 3.25],
            "count": np.array([1, 2, 3], dtype="int64"),
        },
        geometry=[WITH_HOLE, MULTIPART, square(300, 300, 40)],
        crs=WORK,
    )
    return PlanLayer(
        kind="permanent_farmland", name=name, source="农田.zip", checksum=checksum, crs_in="EPSG:4527",
        frame=frame,
        repairs=(Repair("F2", "self_intersection", "make_valid", "环自相交 ring self-intersection"),),
        notes=("encoding GBK detected (no .cpg)", "CRS from .prj"), encoding="gbk",
        meta={"year": 2024},
    )


def boundary_layer(name: str = "城市边界") -> PlanLayer:
    frame = gpd.GeoDataFrame({"feature_id": ["1"]}, geometry=[square(-100, -100, 1000)], crs=WORK)
    return PlanLayer(kind="city_boundary", name=name, source="boundary.geojson", checksum="b0b0",
                     crs_in="EPSG:4490", frame=frame)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def blueprint(version: str = "v1", n_pieces: int = 4, layers: tuple[PlanLayer, ...] = ()) -> Blueprint:
    """A small hand-made blueprint: a row of squares as pieces, one conflict."""
    pieces = gpd.GeoDataFrame(
        {
            "piece_id": [f"P{i + 1:06d}" for i in range(n_pieces)],
            "kind": ["permanent_farmland" if i % 2 else "urban_space" for i in range(n_pieces)],
            "kinds": [_json(["permanent_farmland", "agricultural_space"])] * n_pieces,
            "covered_by": [_json(["permanent_farmland", "urban_boundary"])] * n_pieces,
            "sources": [_json([{"kind": "permanent_farmland", "layer": "农田", "feature_id": str(i),
                                "source": "农田.zip", "checksum": "c0ffee"}]) for i in range(n_pieces)],
            "area_m2": [100.0 * 100.0] * n_pieces,
            "ellipsoidal_area_m2": [100.0 * 100.0 * 0.9998] * n_pieces,
        },
        geometry=[square(100 * i, 0, 100) for i in range(n_pieces)],
        crs=WORK,
    )
    conflicts = gpd.GeoDataFrame(
        {
            "conflict_id": ["C000001"], "kind_a": ["permanent_farmland"], "kind_b": ["urban_boundary"],
            "layer_a": ["永久基本农田2024"], "layer_b": ["城镇开发边界"],
            "feature_ids": [_json({"permanent_farmland": ["F1"], "urban_boundary": ["U7"]})],
            "rule": ["three_lines_exclusive"], "resolution": ["永久基本农田优先 permanent_farmland prevails"],
            "winner": ["permanent_farmland"], "area_m2": [2500.0],
        },
        geometry=[square(0, 0, 50)],
        crs=WORK,
    )
    refs = tuple(LayerRef(lyr.kind, lyr.name, lyr.source, lyr.checksum, len(lyr.frame)) for lyr in layers)
    return Blueprint(
        version=version, crs=WORK, pieces=pieces, conflicts=conflicts, layers=refs,
        precedence=("ecological_redline", "permanent_farmland", "urban_boundary"), tolerance_m=0.5,
        created_by="张工", absorbed=({"kind": "sliver", "area_m2": np.float64(0.12)},),
        meta={"build_seconds": 1.5},
    )
