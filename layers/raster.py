"""layers.raster: turn a classified GeoTIFF into zone polygons (rasterio.features.shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
from pyproj import CRS
from rasterio.errors import RasterioError
from shapely.geometry import MultiPolygon, shape

from layers.errors import EmptyLayerError, FileTooLargeError, UnreadableLayerError
from layers.model import Limits

SHAPES_DTYPES = ("int16", "int32", "uint8", "uint16", "float32")


def _shapes_array(data: np.ndarray) -> np.ndarray:
    """rasterio.features.shapes accepts only a few dtypes; widen or narrow losslessly where needed."""
    if data.dtype.name in SHAPES_DTYPES:
        return data
    if np.issubdtype(data.dtype, np.integer):
        return data.astype("int32")
    return data.astype("float32")


def zone_mask(data: np.ndarray, valid: np.ndarray, values: Sequence[float] | None) -> np.ndarray:
    """Cells that belong to the zone: value in ``values`` or, by default, any non-zero value."""
    selected = np.isin(data, np.asarray(values)) if values else data != 0
    return selected & valid


def read_raster(path: Path, *, values: Sequence[float] | None = None, band: int = 1,
                limits: Limits = Limits()) -> tuple[gpd.GeoDataFrame, CRS | None, list[str]]:
    """Polygonise band ``band``: one feature per selected cell value, column ``value``.

    ``values`` lists the cell values that make the zone (e.g. susceptibility classes 3 and 4);
    by default every non-zero, non-nodata cell counts. Continuous rasters (slope) must be
    classified first. Returns (frame in the raster CRS, that CRS or None, notes).
    """
    source = path.name
    try:
        with rasterio.open(path) as src:
            cells = src.width * src.height
            if cells > limits.max_vertices:
                raise FileTooLargeError(f"{source}: " + limits.exceeded(
                    "max_vertices", f"{cells:,} cells (each counts as a vertex)"))
            if not 1 <= band <= src.count:
                raise UnreadableLayerError(f"{source}: has {src.count} band(s), band {band} requested")
            data = src.read(band)
            valid = src.read_masks(band) > 0
            transform = src.transform
            crs = CRS.from_user_input(src.crs.to_wkt()) if src.crs else None
    except RasterioError as exc:
        raise UnreadableLayerError(f"{source}: cannot be read as a raster ({exc})") from exc
    mask = zone_mask(data, valid, values)
    if not mask.any():
        chosen = "non-zero" if not values else ", ".join(f"{v:g}" for v in values)
        raise EmptyLayerError(f"{source}: no cell has a selected value ({chosen})")
    parts: dict[float, list[object]] = {}
    for geom, value in rasterio.features.shapes(_shapes_array(data), mask=mask, transform=transform):
        parts.setdefault(float(value), []).append(shape(geom))
    # shapes() already merges connected cells, so each value's polygons are disjoint: collect, no union
    keys = sorted(parts)
    geoms = [MultiPolygon(parts[k]) if len(parts[k]) > 1 else parts[k][0] for k in keys]
    frame = gpd.GeoDataFrame({"value": keys}, geometry=geoms, crs=crs)
    note = (f"{source}: polygonised band {band}, {int(mask.sum()):,} of {mask.size:,} cells selected "
            f"({'non-zero' if not values else 'values ' + ', '.join(f'{v:g}' for v in values)})")
    return frame, crs, [note]
