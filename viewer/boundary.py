"""viewer.boundary: names for the map without any basemap — a label per named area of the boundary layer."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.ops import polylabel

from layers.crs import reproject_array
from viewer.tilegrid import LONLAT

# attribute columns that name an administrative area, most specific first (标准 XZQ layers use XZQMC)
NAME_COLUMNS = ("XZQMC", "区县", "QXMC", "名称", "NAME", "name", "行政区", "区划名称", "district")
OUTLINE_TOLERANCE_M = 20.0  # district lines are a guide: 20 m is under a pixel up to zoom 12


def name_column(frame: gpd.GeoDataFrame) -> str | None:
    """The column holding the areas' names, if the layer has one."""
    return next((c for c in NAME_COLUMNS if c in frame.columns and frame[c].notna().any()), None)


def label_point(geom: shapely.Geometry) -> shapely.Point:
    """Where a name goes: the pole of inaccessibility of the largest part (inside, far from the edges;
    a centroid can fall outside a crescent-shaped district or in a narrow neck)."""
    parts = shapely.get_parts(geom)
    largest = parts[int(np.argmax(shapely.area(parts)))]
    return polylabel(largest, tolerance=max(1.0, np.sqrt(largest.area) / 200))


def boundary_labels(frame: gpd.GeoDataFrame) -> dict[str, Any]:
    """``{"labels": [{name, lon, lat, area_m2}], "outlines": FeatureCollection}`` (EPSG:4326) for the named
    features of a boundary layer (working CRS), largest first: the client places labels in this order
    and drops a later one that would overlap an earlier one. Unnamed features give outlines only."""
    empty = {"labels": [], "outlines": {"type": "FeatureCollection", "features": []}}
    if frame is None or len(frame) == 0 or frame.crs is None:
        return empty
    src = CRS.from_user_input(frame.crs)
    column = name_column(frame)
    geoms = frame.geometry.to_numpy()
    areas = shapely.area(geoms)
    order = np.argsort(-areas, kind="stable")
    names = frame[column].astype(str).to_numpy() if column else np.array([""] * len(frame), dtype=object)
    named = [i for i in order if names[i].strip() and names[i] != "None"]
    points = reproject_array(np.array([label_point(geoms[i]) for i in named], dtype=object), src, LONLAT)
    labels = [{"name": names[i].strip(), "lon": round(float(p.x), 6), "lat": round(float(p.y), 6),
               "area_m2": round(float(areas[i]), 1)} for i, p in zip(named, points, strict=True)]
    simplified = shapely.simplify(geoms[order], OUTLINE_TOLERANCE_M)
    outlines = reproject_array(shapely.boundary(simplified), src, LONLAT)
    features = [{"type": "Feature", "properties": {"name": names[i].strip()},
                 "geometry": json.loads(shapely.to_geojson(shapely.set_precision(g, 1e-6)))}
                for i, g in zip(order, outlines, strict=True) if not g.is_empty]
    return {"labels": labels, "outlines": {"type": "FeatureCollection", "features": features}}
