"""runtime.geojson: frames already in EPSG:4326 as GeoJSON FeatureCollections, values as plain JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
from shapely.geometry import mapping


def feature_collection(
    frame: gpd.GeoDataFrame, *, id_column: str | None, properties: Sequence[str] | None = None
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of a frame already in EPSG:4326 (``id`` from ``id_column``)."""
    columns = [c for c in (properties or frame.columns) if c in frame.columns and c != frame.geometry.name]
    ids = frame[id_column].astype(str).tolist() if id_column is not None else [None] * len(frame)
    features = []
    for fid, record, geom in zip(ids, frame[columns].to_dict(orient="records"), frame.geometry, strict=True):
        feature: dict[str, Any] = {
            "type": "Feature",
            "geometry": mapping(geom) if geom is not None else None,
            "properties": {k: _plain(v) for k, v in record.items()},
        }
        if fid is not None:
            feature["id"] = fid
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if value != value else value
    if hasattr(value, "item"):
        return _plain(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
