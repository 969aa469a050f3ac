"""layers.geojson_rows: a few GeoJSON parcels read into plain arrays — no pandas frame on the check path."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from layers.crs import require_projected, resolve_crs
from layers.errors import EmptyLayerError, FileTooLargeError
from layers.formats import UNCLOSED_DETAIL, unclosed_note
from layers.geometry import repair_geometries
from layers.ingest import (
    _WGS84,
    NAME_COLUMNS,
    PARCEL_ID_COLUMNS,
    _array_bounds,
    _geojson_features,
    _geojson_geometry,
    _has_unclosed_ring,
    _label,
    _legacy_crs,
    _properties,
    _record_ids,
    _require_finite,
    _require_unique_parcel_numbers,
    _to_crs,
    parcels_from_geojson,
)
from layers.model import Limits, ParcelSet, Repair
from layers.web_offsets import offset_hint, refuse_offset_hint

SCALARS = (str, int, float, bool, type(None))


class ParcelRows(ParcelSet):
    """A :class:`ParcelSet` read on the fast path: ``ids``, ``names`` and ``geoms`` (working CRS) as
    arrays; the ``frame`` is built only when something asks for it (a job's parquet, a project), by
    the general reader on the same GeoJSON, so it is the frame that reader gives."""

    def __init__(self, *, ids: list[str], names: list[str | None], geoms: NDArray[np.object_],
                 work_crs: CRS, obj: dict[str, Any], limits: Limits, **kwargs: Any) -> None:
        self.ids, self.names, self.geoms, self.work_crs = ids, names, geoms, work_crs
        self._obj, self._limits = obj, limits
        self._frame: gpd.GeoDataFrame | None = None
        super().__init__(frame=None, **kwargs)  # built on first use

    @property
    def frame(self) -> gpd.GeoDataFrame:
        if self._frame is None:
            self._frame = parcels_from_geojson(self._obj, work_crs=self.work_crs, limits=self._limits).frame
        return self._frame

    @frame.setter
    def frame(self, value: gpd.GeoDataFrame | None) -> None:
        self._frame = value

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Simple:
    """What the fast path needs of a FeatureCollection it can read."""

    features: list[dict[str, Any]]
    records: list[dict[str, Any]] = field(default_factory=list)


def parcel_rows_from_geojson(obj: dict[str, Any], *, work_crs: CRS, limits: Limits = Limits()) -> ParcelSet:
    """:func:`layers.ingest.parcels_from_geojson` for the approval system's small submissions.

    The same steps, limits, notes, repairs and errors, on lists and arrays instead of a pandas frame:
    a FeatureCollection of Polygon/MultiPolygon features with plain attribute values whose parcel ids
    the plain-Python id rules decide. Anything else (and anything the rules cannot decide) goes to the
    general reader unchanged, so both give the same parcels (tests/checks/test_geojson_rows.py).
    """
    simple = _simple(obj, limits)
    if simple is None:
        return parcels_from_geojson(obj, work_crs=work_crs, limits=limits)
    features, records = simple.features, simple.records
    legacy = _legacy_crs(obj)
    _require_unique_parcel_numbers(list(dict.fromkeys(k for r in records for k in r)),
                                   lambda c: [r.get(c) for r in records], "GeoJSON")
    geoms = np.empty(len(features), dtype=object)
    geoms[:] = [_geojson_geometry(f, i) for i, f in enumerate(features)]
    columns = list(dict.fromkeys(k for r in records for k in r))
    quick = _record_ids(records, columns, "parcel_id", PARCEL_ID_COLUMNS)
    if quick is None or _case_clash(quick[0]):
        return parcels_from_geojson(obj, work_crs=work_crs, limits=limits)
    rows, id_from = quick
    names = _names(rows)
    if names is None:  # a name column the frame would turn into text its own way
        return parcels_from_geojson(obj, work_crs=work_crs, limits=limits)
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return _rows(obj, rows, id_from, names, geoms, legacy, checksum=hashlib.sha256(text).hexdigest(),
                 work_crs=work_crs, limits=limits)


def _simple(obj: Any, limits: Limits) -> _Simple | None:
    """The features and their property records when the fast path applies, else None."""
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        return None
    features = _geojson_features(obj)
    if not features or len(features) > limits.max_features:
        return None  # the general reader words the errors
    records = []
    for i, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            return None
        props = feature.get("properties") or {}
        if not isinstance(props, dict) or "geometry" in props or not all(
                isinstance(v, SCALARS) for v in props.values()):
            return None
        records.append(_properties(feature, i))
    return _Simple(features, records)


def _case_clash(rows: list[dict[str, Any]]) -> bool:
    """Attribute names equal ignoring case (also to the ``name`` column the frame path may add): the
    frame path renames one of them (layers.ingest.unique_columns) and notes it."""
    columns = list(dict.fromkeys(["parcel_id", "name", *(k for r in rows for k in r)]))
    return len({c.lower() for c in columns}) != len(columns)


def _names(rows: list[dict[str, Any]]) -> list[str | None] | None:
    """Each parcel's name as the frame path gives it to the Screener; None when only pandas can say."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if "name" in columns:  # used as it is: text, or no name
        return [v if type(v) is str else None for v in (r.get("name") for r in rows)]
    by_name: dict[str, str] = {}
    for c in columns:
        if c != "parcel_id":
            by_name.setdefault(str(c).strip().lower(), c)
    column = next((by_name[c] for c in NAME_COLUMNS if c in by_name), None)
    if column is None:
        return [None] * len(rows)
    values = [r.get(column) for r in rows]
    if not all(v is None or type(v) is str for v in values):
        return None  # numbers: pandas' astype(str) decides their text ("1.0" or "1")
    return values


def _rows(obj: dict[str, Any], rows: list[dict[str, Any]], id_from: str | None, names: list[str | None],
          geoms: NDArray[np.object_], legacy: CRS | None, *, checksum: str, work_crs: CRS,
          limits: Limits) -> ParcelRows:
    """:func:`layers.ingest._geojson_parcel_set` step for step, on lists."""
    source = "GeoJSON"
    implied = legacy is None
    require_projected(work_crs)
    vertices = int(shapely.get_num_coordinates(geoms).sum())
    if vertices > limits.max_vertices:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_vertices", f"{vertices:,} vertices"))
    ids = [str(r["parcel_id"]) for r in rows]
    _require_finite(geoms, ids, source)
    notes: list[str] = []
    if id_from:
        notes.append(f"parcel_id from attribute {id_from!r}")
    crs_in, crs_notes = resolve_crs(legacy or _WGS84, None, implied=implied, bounds=_array_bounds(geoms),
                                    source=source)
    if crs_in.is_geographic:  # as _refuse_web_map_offset, on the records
        columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c != "geometry"]
        refuse_offset_hint(offset_hint(columns, lambda c: _samples(rows, c), implied=implied), source)
    notes.extend(crs_notes)
    geoms = _to_crs(geoms, crs_in, work_crs)
    if _label(crs_in) != _label(work_crs):
        notes.append(f"reprojected {_label(crs_in)} → {_label(work_crs)}")
    fixed, keep, repairs = repair_geometries(ids, geoms, source=source)
    if not keep.any():
        raise EmptyLayerError(f"{source}: no usable features"
                              + (f" ({len(repairs)} dropped, see repairs)" if repairs else ""))
    kept = np.flatnonzero(keep).tolist()
    features = _geojson_features(obj)
    unclosed = [i + 1 for i, f in enumerate(features) if _has_unclosed_ring(f.get("geometry"))]
    if unclosed:  # as parcels_from_geojson: ids of the rows when no feature was dropped
        whole = len(kept) == len(features)
        closed = [Repair(ids[i - 1] if whole else str(i), "ring_not_closed", "closed", UNCLOSED_DETAIL)
                  for i in unclosed]
        repairs = [*closed, *repairs]
        notes.append(unclosed_note("GeoJSON", unclosed))
    return ParcelRows(ids=[ids[i] for i in kept], names=[names[i] for i in kept],
                      geoms=np.asarray(fixed[keep], dtype=object), work_crs=work_crs, obj=obj, limits=limits,
                      source=source, crs_in=_label(crs_in), checksum=checksum, repairs=tuple(repairs),
                      notes=tuple(notes))


def _samples(rows: list[dict[str, Any]], column: str, limit: int = 20) -> list[str]:
    """layers.ingest._text_samples on records: text values among the first 200 rows."""
    return [v for v in (r.get(column) for r in rows[:200]) if isinstance(v, str)][:limit]
