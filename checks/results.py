"""checks.results: the result contract's JSON form — canonical numbers, RFC 7946 geometry, requirements."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from checks.errors import CheckError
from layers.crs import output_geometries

AREA_DECIMALS = 4
RATIO_DECIMALS = 8
COORD_DECIMALS = 7  # ≈1 cm in lon/lat


def natural_key(value: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key ordering "2" before "10" and "P2" before "P10"; total over all strings."""
    return tuple((0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk)
                 for chunk in _DIGIT_RUNS(value) if chunk)


_DIGIT_RUNS = re.compile(r"(\d+)").split


def rounded(value: float, decimals: int) -> float:
    rounded = round(float(value), decimals)
    return 0.0 if rounded == 0 else rounded  # no "-0.0" in canonical JSON


def geojson_all(geoms: NDArray[np.object_], crs: CRS) -> list[dict[str, Any] | None]:
    """RFC 7946 geometries in EPSG:4326: CCW exteriors, coordinates rounded to COORD_DECIMALS.

    Reprojects and orients with layers.crs.output_geometries (what layers.crs.to_output does to frames)
    and cuts every ring out of one rounded coordinate array, so no per-vertex Python work is done;
    the result is canonical as built (result_json passes geometry through untouched).
    """
    out: list[dict[str, Any] | None] = [None] * len(geoms)
    if len(geoms) == 0:
        return out
    lonlat = output_geometries(geoms, crs)
    parts, owner = shapely.get_parts(lonlat, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    values = np.round(coords, COORD_DECIMALS).tolist()
    cut = np.searchsorted(ring_of, np.arange(len(rings) + 1)).tolist()
    polygons: list[list[list[list[float]]]] = [[] for _ in range(len(parts))]
    for r, part in enumerate(ring_part.tolist()):
        polygons[part].append(values[cut[r]:cut[r + 1]])
    multi = shapely.get_type_id(lonlat) == 6
    by_owner: dict[int, list[list[list[list[float]]]]] = defaultdict(list)
    for part, geom in enumerate(owner.tolist()):
        by_owner[geom].append(polygons[part])
    for geom, polys in by_owner.items():
        out[geom] = ({"type": "MultiPolygon", "coordinates": polys} if multi[geom]
                     else {"type": "Polygon", "coordinates": polys[0]})
    return out


def collect_requirements(parcels: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The submission's requirements: each once, in first-seen order, with the parcels and kinds that
    ask for it (from the conditional overlaps of every parcel)."""
    found: dict[str, dict[str, Any]] = {}
    for parcel in parcels:
        for hit in parcel["conflicts"]:
            if hit["rule"] != "conditional":
                continue
            for need in hit.get("requirements", ()):
                entry = found.setdefault(need["key"], {**need, "parcel_ids": [], "kinds": []})
                if parcel["parcel_id"] not in entry["parcel_ids"]:
                    entry["parcel_ids"].append(parcel["parcel_id"])
                if hit["kind"] not in entry["kinds"]:
                    entry["kinds"].append(hit["kind"])
    return list(found.values())


def _canonical(value: Any) -> Any:
    """Floats rounded (no -0.0, no NaN), tuples as lists: the one JSON form of a result."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common leaves first
        return value
    if kind is dict:
        # GeoJSON geometry comes canonical from _geojson_all: walking every vertex again is the
        # most expensive part of serialising a result, so it is passed through as is
        return {str(k): v if k == "geometry" else _canonical(v) for k, v in value.items()}
    if kind is list:
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CheckError(f"non-finite number in a result: {value}")
        return rounded(value, 9)
    if isinstance(value, Mapping):
        return {str(k): v if k == "geometry" else _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return _canonical(value.item())
    return value


def result_json(result: Mapping[str, Any]) -> str:
    """Canonical serialisation: the same input and version give byte-identical text."""
    return json.dumps(_canonical(result), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
