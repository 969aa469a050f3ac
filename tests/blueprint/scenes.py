"""Helpers to build small plan layers and golden scenes for the merge tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from layers.model import PlanLayer
from tests.geoms import X0, Y0

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "blueprint"
CRS = "EPSG:4548"


def rel_box(x0: float, y0: float, x1: float, y1: float) -> BaseGeometry:
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def shape_of(spec: dict[str, Any]) -> BaseGeometry:
    """A feature or expectation geometry from ``box`` or relative ``wkt``."""
    if "box" in spec:
        return rel_box(*spec["box"])
    return shapely.affinity.translate(shapely.from_wkt(spec["wkt"]), X0, Y0)


def layer(kind: str, geoms: list[BaseGeometry], ids: list[str] | None = None, name: str | None = None,
          crs: str = CRS) -> PlanLayer:
    ids = ids or [str(i) for i in range(1, len(geoms) + 1)]
    frame = gpd.GeoDataFrame({"feature_id": ids}, geometry=list(geoms), crs=crs)
    return PlanLayer(kind=kind, name=name or kind, source=f"{kind}.shp", checksum=f"sha256-{kind}",
                     crs_in=crs, frame=frame)


def layer_from_spec(spec: dict[str, Any]) -> PlanLayer:
    feats = spec["features"]
    return layer(spec.get("kind", "city_boundary"), [shape_of(f) for f in feats], [f["id"] for f in feats],
                 name=spec["name"])


def golden_scenes() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(test id, scene, run) for every run of every golden file."""
    out = []
    for path in sorted(GOLDEN.glob("*.json")):
        scene = json.loads(path.read_text(encoding="utf-8"))
        for run in scene["runs"]:
            out.append((f"{path.stem}@{run['tolerance_m']}", scene, run))
    return out
