"""layers.ingest: read plan layers and project parcels from any supported file into the working CRS."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.geometry
from geopandas.array import from_shapely
from numpy.typing import NDArray
from pyproj import CRS

from layers.attributes import attributed, normalise_attributes
from layers.catalogue import Catalogue
from layers.crs import (
    OFFSET_DATUMS,
    DatumParams,
    crs_label,
    offset_name,
    old_datum,
    old_datum_to_cgcs2000,
    parse_crs,
    reproject_array,
    require_projected,
    resolve_crs,
    to_work_crs,
    transformer,
    zone3_of_crs,
)
from layers.errors import (
    CoordinatesOutOfRangeError,
    CRSConflictError,
    DuplicateIdError,
    EmptyLayerError,
    FieldMappingError,
    FileTooLargeError,
    GeometryTypeError,
    NonFiniteCoordinatesError,
    UnreadableLayerError,
)
from layers.formats import UNCLOSED_DETAIL, RawLayer, read_source, unclosed_note
from layers.geometry import repair_frame, repair_geometries
from layers.model import Limits, ParcelSet, PlanLayer, Repair
from layers.web_offsets import offset_hint, offset_note, refuse_offset_hint, undo_offset

# attribute names that usually carry a feature's id (compared case-insensitively, first match wins)
# 地块编号 / DKBH: the parcel number of a detailed plan (控规地块)
FEATURE_ID_COLUMNS = ("feature_id", "fid", "id", "objectid", "bsm", "标识码", "编号", "bh", "地块编号",
                      "dkbh")
PARCEL_ID_COLUMNS = ("parcel_id", "地块编号", "dkbh", "dkbm", "编号", "bh", "id", "fid", "objectid", "bsm")
# explicit parcel-number columns: duplicates there are the surveyor's mistake, refused, not renumbered
# (generic ids such as fid or objectid are still replaced by 1..n when they repeat)
PARCEL_NUMBER_COLUMNS = ("parcel_id", "地块编号", "dkbh", "dkbm")
NAME_COLUMNS = ("name", "名称", "地块名称", "dkmc", "项目名称", "xmmc", "mc")
GEOMETRY_FAMILIES = {"polygon": ("Polygon", "MultiPolygon"), "line": ("LineString", "MultiLineString"),
                     "point": ("Point", "MultiPoint")}

CRSInput = CRS | str | int | None
BUBIAO_FORMAT = "部标 TXT"  # layers.formats.FORMATS[".txt"]


@dataclass
class _Loaded:
    frame: gpd.GeoDataFrame
    raw: RawLayer
    crs_in: CRS
    repairs: list[Repair]
    notes: list[str]
    id_column: str | None
    offset_undone: str | None = None  # "GCJ02" / "BD09" when declared and undone on reading


def read_layer(path: Path | str, kind: str, *, work_crs: CRS, catalogue: Catalogue, crs: CRSInput = None,
               encoding: str | None = None, layer: str | None = None, name: str | None = None,
               limits: Limits = Limits(), raster_values: Sequence[float] | None = None,
               datum_params: DatumParams | None = None,
               fields: Mapping[str, str] | None = None) -> PlanLayer:
    """Read a plan layer of catalogue ``kind`` into the working CRS, repaired, with a report.

    A kind with attribute ``fields`` (detailed plans, regional assessments) gets its attributes read
    and checked (:mod:`layers.attributes`); ``fields`` names the file's columns where they differ
    from the catalogue's defaults (``{"RJL": "容积率"}``).

    ``crs`` declares the CRS of a file that states none; ``encoding`` overrides attribute-encoding
    detection; ``layer`` picks a layer of a GeoPackage/KML, a dataset inside a zip or a CAD layer of a
    DXF; ``raster_values`` lists the GeoTIFF cell values that form the zone (default: non-zero);
    ``datum_params`` (7-parameter Helmert) let Beijing 1954 / Xi'an 1980 input through.
    """
    spec = catalogue[kind]
    loaded = _load(Path(path), work_crs=work_crs, crs=crs, encoding=encoding, layer=layer, limits=limits,
                   raster_values=raster_values, geometry=spec.geometry, id_column="feature_id",
                   id_candidates=FEATURE_ID_COLUMNS, datum_params=datum_params)
    return with_attributes(_plan_layer(loaded, kind, name), catalogue, fields)


def with_attributes(plan: PlanLayer, catalogue: Catalogue, fields: Mapping[str, str] | None) -> PlanLayer:
    """``plan`` with its canonical attributes added and reported, for kinds that carry them."""
    spec = catalogue[plan.kind]
    if not attributed(spec):
        if fields:
            raise FieldMappingError(f"{plan.source}: a {plan.kind} layer has no attribute fields to name "
                                    f"({', '.join(fields)})")
        return plan
    frame, repairs, notes = normalise_attributes(plan.frame, spec, catalogue, overrides=fields,
                                                 source=plan.source)
    plan.frame, plan.repairs, plan.notes = frame, (*plan.repairs, *repairs), (*plan.notes, *notes)
    return plan


def inspect_layer(path: Path | str, *, work_crs: CRS, crs: CRSInput = None, encoding: str | None = None,
                  layer: str | None = None, limits: Limits = Limits(),
                  raster_values: Sequence[float] | None = None,
                  datum_params: DatumParams | None = None) -> PlanLayer:
    """Like :func:`read_layer` for a file whose kind is not known yet (polygons, kind left blank)."""
    loaded = _load(Path(path), work_crs=work_crs, crs=crs, encoding=encoding, layer=layer, limits=limits,
                   raster_values=raster_values, geometry="polygon", id_column="feature_id",
                   id_candidates=FEATURE_ID_COLUMNS, datum_params=datum_params)
    return _plan_layer(loaded, "", None)


def read_parcels(path: Path | str, *, work_crs: CRS, crs: CRSInput = None, encoding: str | None = None,
                 layer: str | None = None, limits: Limits = Limits(),
                 datum_params: DatumParams | None = None) -> ParcelSet:
    """Read project parcels (any supported format, 部标 TXT included) into the working CRS, repaired."""
    loaded = _load(Path(path), work_crs=work_crs, crs=crs, encoding=encoding, layer=layer, limits=limits,
                   raster_values=None, geometry="polygon", id_column="parcel_id",
                   id_candidates=PARCEL_ID_COLUMNS, datum_params=datum_params)
    return _parcel_set(loaded)


def parcels_from_geojson(obj: dict[str, Any], *, work_crs: CRS, limits: Limits = Limits()) -> ParcelSet:
    """Parcels from a GeoJSON object (FeatureCollection, Feature or bare geometry); a ring without its
    closing vertex is closed and noted, as the file readers do (:func:`layers.formats.unclosed_note`)."""
    parcel_set = _parcels_from_geojson(obj, work_crs=work_crs, limits=limits)
    unclosed = [i + 1 for i, f in enumerate(_geojson_features(obj))
                if isinstance(f, dict) and _has_unclosed_ring(f.get("geometry"))]
    if unclosed:
        ids = [str(v) for v in parcel_set.frame["parcel_id"]]
        whole = len(ids) == len(_geojson_features(obj))  # no feature dropped: row i is feature i
        closed = [Repair(ids[i - 1] if whole else str(i), "ring_not_closed", "closed", UNCLOSED_DETAIL)
                  for i in unclosed]
        parcel_set = dataclasses.replace(parcel_set, repairs=(*closed, *parcel_set.repairs),
                                         notes=(*parcel_set.notes, unclosed_note("GeoJSON", unclosed)))
    return parcel_set


def _has_unclosed_ring(geometry: Any) -> bool:
    if not isinstance(geometry, dict):
        return False
    coordinates = geometry.get("coordinates")
    polygons: Any = {"Polygon": [coordinates], "MultiPolygon": coordinates}.get(str(geometry.get("type")))
    try:
        return any(len(ring) > 0 and list(ring[0]) != list(ring[-1])
                   for polygon in polygons or [] for ring in polygon)
    except TypeError:  # malformed coordinates: the reader reports them
        return False


def _parcels_from_geojson(obj: dict[str, Any], *, work_crs: CRS, limits: Limits = Limits()) -> ParcelSet:
    """Parcels from a GeoJSON object (FeatureCollection, Feature or bare geometry).

    RFC 7946 coordinates are EPSG:4326 longitude/latitude; a legacy top-level ``crs`` member
    (e.g. ``{"type": "name", "properties": {"name": "EPSG:4490"}}``) is honoured.

    This is the approval system's entry (one or a few parcels per request), so it runs the shared
    pipeline's steps (:func:`_finish`, :func:`_parcel_set`) on plain arrays: attributes in one pandas
    frame, geometries in a numpy array reprojected with a cached transformer, one GeoDataFrame built at
    the end. Same frame, notes, repairs and errors as the file path.
    """
    features = _geojson_features(obj)
    if len(features) > limits.max_features:
        raise FileTooLargeError("GeoJSON: " + limits.exceeded("max_features", f"{len(features):,} features"))
    legacy = _legacy_crs(obj)
    records = [_properties(f, i) for i, f in enumerate(features)]
    _require_unique_parcel_numbers(list(dict.fromkeys(k for r in records for k in r)),
                                   lambda c: [r.get(c) for r in records], "GeoJSON")
    geoms = np.empty(len(features), dtype=object)
    geoms[:] = [_geojson_geometry(f, i) for i, f in enumerate(features)]
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    checksum = hashlib.sha256(text).hexdigest()
    columns = list(dict.fromkeys(k for r in records for k in r))  # pandas' order: first appearance
    if "geometry" in columns:  # an attribute named like the geometry column: the frame path
        frame = gpd.GeoDataFrame(pd.DataFrame.from_records(records, index=range(len(features))),
                                 geometry=list(geoms), crs=None)
        raw = RawLayer(frame, legacy or _WGS84, "GeoJSON", "GeoJSON", checksum, implied=legacy is None)
        return _parcel_set(_finish(raw, work_crs=work_crs, crs=None, limits=limits, geometry="polygon",
                                   id_column="parcel_id", id_candidates=PARCEL_ID_COLUMNS))
    quick = _record_ids(records, columns, "parcel_id", PARCEL_ID_COLUMNS)
    if quick is None:
        attributes = pd.DataFrame.from_records(records, index=range(len(features))).reset_index(drop=True)
        attributes, id_from = _assign_ids(attributes, "parcel_id", PARCEL_ID_COLUMNS)
    else:
        with_ids, id_from = quick
        attributes = pd.DataFrame.from_records(with_ids, index=range(len(features))).reset_index(drop=True)
    return _geojson_parcel_set(attributes, id_from, geoms, legacy or _WGS84, implied=legacy is None,
                               checksum=checksum, work_crs=work_crs, limits=limits)


_UNSURE = object()  # sentinel: the plain-Python id rules cannot tell, pandas decides


def _plain_end(char: str) -> bool:
    """A first/last character that no whitespace definition (Python's, Arrow's) would strip."""
    return char.isalnum() or (char.isascii() and char.isprintable() and char != " ")


def _plain_id_strings(values: list[Any]) -> list[str] | object | None:
    """:func:`_id_strings` for the common attribute values (all str, or all int), without pandas.

    None when the column is unusable (a gap, an empty text, duplicates), :data:`_UNSURE` for anything
    else (floats, booleans, mixed types, padded text), which the pandas rules then decide.
    """
    if any(v is None or v is _UNSURE or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None  # pandas: a missing value (None, NaN or no such key in the record)
    if all(type(v) is str for v in values):
        if any(v == "" for v in values):
            return None
        if not all(_plain_end(v[0]) and _plain_end(v[-1]) for v in values):
            return _UNSURE
        texts = list(values)
    elif all(type(v) is int and -(2**63) <= v < 2**63 for v in values):
        texts = [str(v) for v in values]
    else:
        return _UNSURE
    return texts if len(set(texts)) == len(texts) else None


def _record_ids(records: list[dict[str, Any]], columns: list[str], id_column: str,
                candidates: Sequence[str]) -> tuple[list[dict[str, Any]], str | None] | None:
    """:func:`_assign_ids` on GeoJSON property records (before the frame is built), or None when only
    the pandas rules can decide. Returns the records with ``id_column`` first, and the attribute used."""
    if not records or f"{id_column}_source" in columns:
        return None
    by_name = {str(c).strip().lower(): c for c in columns}
    ids: list[str] | None = None
    chosen: str | None = None
    for candidate in candidates:
        column = by_name.get(candidate)
        if column is None:
            continue
        found = _plain_id_strings([r.get(column, _UNSURE) for r in records])
        if found is _UNSURE:
            return None
        if isinstance(found, list):
            ids, chosen = found, str(column)
            break
    if ids is None:
        ids = [str(i) for i in range(1, len(records) + 1)]
    # like _assign_ids: a source column of that name is dropped when it gave the ids, else kept aside
    rename = f"{id_column}_source"
    out = []
    for text, record in zip(ids, records, strict=True):
        row: dict[str, Any] = {id_column: text}
        for key, value in record.items():
            if key == id_column:
                if chosen == id_column:
                    continue
                key = rename
            row[key] = value
        out.append(row)
    return out, chosen


_WGS84 = CRS.from_epsg(4326)
_labels: dict[str, str] = {}


def _label(crs: CRS) -> str:
    """layers.crs.crs_label, cached by the CRS's defining string (to_epsg costs ~0.1 ms a call)."""
    if not crs.srs:
        return crs_label(crs)
    found = _labels.get(crs.srs)
    if found is None:
        found = _labels[crs.srs] = crs_label(crs)
    return found


def _to_crs(geoms: NDArray[np.object_], source: CRS, target: CRS) -> NDArray[np.object_]:
    """GeoDataFrame.to_crs on an array: the same always_xy operation (as a cached pipeline), Z carried."""
    return reproject_array(geoms, source, target)


def _geojson_parcel_set(attributes: pd.DataFrame, id_from: str | None, geoms: NDArray[np.object_],
                        crs_file: CRS, *,
                        implied: bool, checksum: str, work_crs: CRS, limits: Limits) -> ParcelSet:
    """:func:`_finish` + :func:`_parcel_set` for GeoJSON parcels, step for step, on arrays."""
    source = "GeoJSON"
    require_projected(work_crs)
    if len(geoms) > limits.max_features:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_features", f"{len(geoms):,} features"))
    vertices = int(shapely.get_num_coordinates(geoms).sum())
    if vertices > limits.max_vertices:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_vertices", f"{vertices:,} vertices"))
    _require_finite(geoms, list(attributes["parcel_id"]), source)
    notes: list[str] = []
    if id_from:
        notes.append(f"parcel_id from attribute {id_from!r}")
    crs_in, crs_notes = resolve_crs(crs_file, None, implied=implied, bounds=_array_bounds(geoms),
                                    source=source)
    _refuse_web_map_offset(attributes, crs_in, implied=implied, asserted=False, source=source)
    notes.extend(crs_notes)
    geoms = _to_crs(geoms, crs_in, work_crs)
    if _label(crs_in) != _label(work_crs):
        notes.append(f"reprojected {_label(crs_in)} → {_label(work_crs)}")
    ids = [str(v) for v in attributes["parcel_id"]]
    fixed, keep, repairs = repair_geometries(ids, geoms, source=source)
    if not keep.any():
        raise EmptyLayerError(f"{source}: no usable features"
                              + (f" ({len(repairs)} dropped, see repairs)" if repairs else ""))
    if not keep.all():
        attributes = attributes.loc[keep].reset_index(drop=True)
        fixed = fixed[keep]
    if "name" not in attributes.columns:
        by_name = _first_by_lower([c for c in attributes.columns if c != "parcel_id"])
        column = next((by_name[c] for c in NAME_COLUMNS if c in by_name), None)
        if column is not None:
            values = attributes[column]
            attributes.insert(1, "name", values.astype(str).where(values.notna(), None))
    # assign + naming the column is the cheap way in (geometry= re-checks CRSs through several copies)
    frame = gpd.GeoDataFrame(attributes.assign(geometry=from_shapely(fixed, crs=work_crs)),
                             geometry="geometry")
    frame, renamed = unique_columns(frame, source)
    notes.extend(renamed)
    return ParcelSet(frame=frame, source=source, crs_in=_label(crs_in), checksum=checksum,
                     repairs=tuple(repairs), notes=tuple(notes))


def _first_by_lower(columns: list[Any]) -> dict[str, Any]:
    """Column by its stripped lower-case name; of names differing only in case, the first one."""
    found: dict[str, Any] = {}
    for column in columns:
        found.setdefault(str(column).strip().lower(), column)
    return found


def _array_bounds(geoms: NDArray[np.object_]) -> tuple[float, float, float, float]:
    """:func:`_bounds` on an array: total bounds of the present, non-empty geometries."""
    present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if len(present) == 0:
        return (np.nan, np.nan, np.nan, np.nan)
    b = shapely.bounds(present)
    return (float(np.nanmin(b[:, 0])), float(np.nanmin(b[:, 1])), float(np.nanmax(b[:, 2])),
            float(np.nanmax(b[:, 3])))


# ---------------------------------------------------------------- the shared pipeline


def _load(path: Path, *, work_crs: CRS, crs: CRSInput, encoding: str | None, layer: str | None,
          limits: Limits, raster_values: Sequence[float] | None, geometry: str, id_column: str,
          id_candidates: Sequence[str], datum_params: DatumParams | None = None) -> _Loaded:
    declared = parse_crs(crs) if crs is not None else None
    raw = read_source(path, crs=declared, encoding=encoding, layer=layer, limits=limits,
                      raster_values=raster_values)
    offset = offset_name(declared)
    if offset is not None:  # GCJ-02 / BD-09: undone here, then the file is plain WGS 84
        raw, declared = _without_offset(raw, offset), None
    loaded = _finish(raw, work_crs=work_crs, crs=declared, limits=limits, geometry=geometry,
                     id_column=id_column, id_candidates=id_candidates, asserted=crs is not None,
                     datum_params=datum_params)
    loaded.offset_undone = offset
    return loaded


def _without_offset(raw: RawLayer, offset: str) -> RawLayer:
    """The raw layer with its GCJ-02 / BD-09 longitude/latitude moved to WGS 84 (EPSG:4326)."""
    if raw.crs is not None and not raw.implied and not raw.crs.is_geographic:
        raise CRSConflictError(f"{raw.source}: the file says {crs_label(raw.crs)} (projected metres), but "
                               f"{offset} was declared: {OFFSET_DATUMS[offset]} coordinates are longitude/"
                               "latitude degrees")
    frame = raw.frame
    geoms = undo_offset(np.asarray(frame.geometry.values, dtype=object), offset)
    raw.frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=_WGS84)
    raw.crs, raw.implied = _WGS84, False
    raw.notes = [*raw.notes, offset_note(offset)]
    return raw


def _text_samples(values: pd.Series, limit: int = 20) -> list[str]:
    """A few text values of a column (for source hints)."""
    return [v for v in values.head(200).tolist() if isinstance(v, str)][:limit]


def _refuse_web_map_offset(attributes: pd.DataFrame, crs_in: CRS, *, implied: bool, asserted: bool,
                           source: str) -> None:
    """Longitude/latitude nobody declared whose attributes say 高德/百度/DataV: refuse, naming GCJ02/BD09."""
    if asserted or not crs_in.is_geographic:
        return
    columns = [c for c in attributes.columns if c != "geometry"]
    refuse_offset_hint(offset_hint(columns, lambda c: _text_samples(attributes[c]), implied=implied), source)


def _finish(raw: RawLayer, *, work_crs: CRS, crs: CRS | None, limits: Limits, geometry: str,
            id_column: str, id_candidates: Sequence[str], asserted: bool = False,
            datum_params: DatumParams | None = None) -> _Loaded:
    """Limits, ids, CRS decision and checks, reprojection, repair: the same for every format.

    ``asserted``: the caller declared the CRS (also GCJ02/BD09, already undone), so no source hint
    can overrule it."""
    require_projected(work_crs)
    source = raw.source
    frame = _nested_as_json(_normalise_geometry_column(raw.frame))
    _check_limits(frame, limits, source)
    if id_column == "parcel_id":
        _require_unique_parcel_numbers([c for c in frame.columns if c != "geometry"],
                                       lambda c: frame[c].tolist(), source)
    frame, id_from = _assign_ids(frame, id_column, id_candidates)
    notes = list(raw.notes)
    if id_from:
        notes.append(f"{id_column} from attribute {id_from!r}")
    crs_in, crs_notes = resolve_crs(raw.crs, crs, implied=raw.implied, bounds=_bounds(frame), source=source,
                                    datum_params=datum_params)
    _refuse_web_map_offset(frame, crs_in, implied=raw.implied and crs is None,
                           asserted=asserted or crs is not None, source=source)
    notes.extend(crs_notes)
    frame = frame.set_crs(crs_in, allow_override=True)
    if datum_params is not None and old_datum(crs_in) is not None:
        frame, moved = old_datum_to_cgcs2000(frame, crs_in, datum_params, source)
        notes.append(moved)
    frame = to_work_crs(frame, work_crs, source=source)
    if id_column == "feature_id":  # plan layers; parcels may lie in other zones (own-zone areas)
        _require_inside_work_area(np.asarray(frame.geometry.values), list(frame[id_column]), work_crs, source)
    if crs_label(crs_in) != crs_label(work_crs):
        notes.append(f"reprojected {crs_label(crs_in)} → {crs_label(work_crs)}")
    closed = [Repair(str(frame[id_column].iloc[row]), "ring_not_closed", "closed", UNCLOSED_DETAIL)
              for row in raw.closed_rings if row < len(frame)]
    frame, repairs = _repair(frame, geometry, id_column, source)
    repairs = [*closed, *repairs]
    if frame.empty:
        raise EmptyLayerError(f"{source}: no usable features"
                              + (f" ({len(repairs)} dropped, see repairs)" if repairs else ""))
    return _Loaded(frame, raw, crs_in, repairs, notes, id_from)


def _normalise_geometry_column(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    return frame.reset_index(drop=True)


def _nested_as_json(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Nested objects and arrays (GDAL hands GeoJSON's over as dicts, lists or numpy arrays) as JSON
    text, the same text the GeoJSON entry makes, never Python repr."""
    for column in frame.columns:
        if column == "geometry" or frame[column].dtype != object:
            continue
        values = frame[column].to_numpy()
        nested = [i for i, v in enumerate(values) if isinstance(v, (dict, list, np.ndarray))]
        if nested:
            values = values.copy()
            for i in nested:
                value = values[i]
                values[i] = json.dumps(value.tolist() if isinstance(value, np.ndarray) else value,
                                       ensure_ascii=False, default=str)
            frame[column] = values
    return frame


def _check_limits(frame: gpd.GeoDataFrame, limits: Limits, source: str) -> None:
    if len(frame) > limits.max_features:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_features", f"{len(frame):,} features"))
    vertices = int(shapely.get_num_coordinates(np.asarray(frame.geometry.values)).sum())
    if vertices > limits.max_vertices:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_vertices", f"{vertices:,} vertices"))
    _require_finite(np.asarray(frame.geometry.values), None, source)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and dicts are values, not gaps
        return False


def _require_unique_parcel_numbers(columns: Sequence[Any], values_of: Any, source: str) -> None:
    """Refuse a parcel-number column whose (complete) values repeat; ``values_of(column)`` lists them."""
    by_name = {str(c).strip().lower(): c for c in columns}
    for candidate in PARCEL_NUMBER_COLUMNS:
        column = by_name.get(candidate)
        if column is None:
            continue
        values = [v for v in values_of(column) if not _missing(v)]
        seen: set[str] = set()
        for value in values:
            text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
            if text in seen:
                raise DuplicateIdError(f"{source}: parcel number {text!r} ({column}) appears more than once "
                                       "地块编号重复")
            seen.add(text)
        return


WORK_AREA_MARGIN_DEG = 3.0  # one 3-degree zone either side of the working CRS's area of use
_work_areas: dict[str, tuple[float, float, float, float] | None] = {}


def _work_area(work_crs: CRS) -> tuple[float, float, float, float] | None:
    """The working CRS's area of use, grown by :data:`WORK_AREA_MARGIN_DEG`, in working coordinates."""
    key = work_crs.to_wkt()
    if key not in _work_areas:
        area = work_crs.area_of_use
        if area is None:
            _work_areas[key] = None
        else:
            m = WORK_AREA_MARGIN_DEG
            west, south = max(area.west - m, -180.0), max(area.south - m, -85.0)
            east, north = min(area.east + m, 180.0), min(area.north + m, 85.0)
            box = transformer(_WGS84, work_crs).transform_bounds(west, south, east, north, densify_pts=21)
            _work_areas[key] = tuple(float(v) for v in box)  # type: ignore[assignment]
    return _work_areas[key]


MAX_FEATURE_EXTENT_M = 10_000_000  # no plan layer's feature is wider than a continent


def _require_inside_work_area(geoms: NDArray[np.object_], ids: Sequence[Any], work_crs: CRS,
                              source: str) -> None:
    """Refuse plan-layer features (reprojected already) that lie wholly outside the working CRS's area
    of use (grown by :data:`WORK_AREA_MARGIN_DEG`) or span more than 10,000 km: a polygon at −2°
    longitude or a whole-world polygon is a wrong CRS or a wrong file, never a red line. A national
    outline that covers the city still passes. (Parcels are not held to it: a project may lie in
    another zone; screening refuses parcels outside the city.)"""
    area = _work_area(work_crs)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if area is None or not present.any():
        return
    b = shapely.bounds(geoms)
    x0, y0, x1, y1 = area
    with np.errstate(invalid="ignore"):
        apart = (b[:, 2] < x0) | (b[:, 0] > x1) | (b[:, 3] < y0) | (b[:, 1] > y1)
        huge = ((b[:, 2] - b[:, 0]) > MAX_FEATURE_EXTENT_M) | ((b[:, 3] - b[:, 1]) > MAX_FEATURE_EXTENT_M)
    bad = present & (apart | huge | ~np.isfinite(b).all(axis=1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CoordinatesOutOfRangeError(
            f"{source}: feature {ids[row]} ({int(bad.sum())} in all) lies far outside the area of the "
            f"working CRS {crs_label(work_crs)} or spans more than 10,000 km; check the file's CRS, or that "
            "it belongs to this city 要素远超出本市工作坐标系范围")


def _require_finite(geoms: NDArray[np.object_], ids: Sequence[Any] | None, source: str) -> None:
    """Refuse NaN and infinite vertices before anything else sees them: repair would drop the vertex
    (the parcel shrinks, the verdict may turn to pass) and bounds would turn to NaN."""
    present = ~shapely.is_missing(geoms)
    counts = shapely.get_num_coordinates(geoms)
    coords = shapely.get_coordinates(geoms)
    if coords.size == 0 or np.isfinite(coords).all():
        return
    row = np.repeat(np.arange(len(geoms))[present], counts[present])[~np.isfinite(coords).all(axis=1)][0]
    which = f"feature {ids[row]}" if ids is not None else f"feature {row + 1}"
    raise NonFiniteCoordinatesError(f"{source}: {which} has a coordinate that is not a finite number "
                                    "(NaN, Infinity or out of range) 坐标含非有限数值")


def _bounds(frame: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    present = frame.geometry[~(frame.geometry.isna() | frame.geometry.is_empty)]
    minx, miny, maxx, maxy = (float(v) for v in present.total_bounds)
    return minx, miny, maxx, maxy


def _id_strings(values: pd.Series) -> pd.Series | None:
    """Values as id strings (1.0 → "1"), or None if any is missing or they are not unique."""
    if values.isna().any():
        return None
    if pd.api.types.is_float_dtype(values):
        if not np.all(np.mod(values.to_numpy(), 1) == 0):
            return None
        values = values.astype("int64")
    text = values.astype(str).str.strip()
    if (text == "").any() or not text.is_unique:
        return None
    return text


def _assign_ids(frame: gpd.GeoDataFrame, id_column: str,
                candidates: Sequence[str]) -> tuple[gpd.GeoDataFrame, str | None]:
    """An id column first: from the first id-like attribute that is complete and unique, else 1..n."""
    ids, chosen = _choose_ids(frame, candidates)
    if ids is None:
        ids = pd.Series([str(i) for i in range(1, len(frame) + 1)], index=frame.index)
    return _place_ids(frame, id_column, ids, chosen), chosen


def _choose_ids(frame: pd.DataFrame, candidates: Sequence[str]) -> tuple[pd.Series | None, str | None]:
    """The ids from the first id-like attribute that is complete and unique, and its name; else None."""
    by_name = {str(c).strip().lower(): c for c in frame.columns if c != "geometry"}
    for candidate in candidates:
        column = by_name.get(candidate)
        if column is not None and (ids := _id_strings(frame[column])) is not None:
            return ids, str(column)
    return None, None


def _place_ids(frame: gpd.GeoDataFrame, id_column: str, ids: pd.Series,
               chosen: str | None) -> gpd.GeoDataFrame:
    """``ids`` as the first column ``id_column``; a source column of that name is dropped when it gave
    the ids, else kept beside as ``<id_column>_source``."""
    if id_column in frame.columns:
        # an unusable source column of that name (gaps, duplicates) is kept beside, not lost
        out = frame.drop(columns=[id_column]) if chosen == id_column else frame.rename(
            columns={id_column: f"{id_column}_source"})
    else:
        out = frame.copy()
    out.insert(0, id_column, ids.to_numpy())
    return out


def _repair(frame: gpd.GeoDataFrame, geometry: str, id_column: str,
            source: str) -> tuple[gpd.GeoDataFrame, list[Repair]]:
    """Polygon kinds go through repair_frame; line/point kinds only lose empties and Z."""
    if geometry == "polygon":
        repaired, repairs = repair_frame(frame, id_column=id_column, source=source)
        return repaired.reset_index(drop=True), repairs
    geoms = frame.geometry
    allowed = GEOMETRY_FAMILIES.get(geometry)
    if allowed is not None:
        types = geoms.geom_type
        bad = types.notna() & ~types.isin(allowed)
        if bad.any():
            first = frame.loc[bad].iloc[0]
            raise GeometryTypeError(f"{source}: feature {first[id_column]} is a {types[bad].iloc[0]}; "
                                    f"this layer kind holds {geometry} features")
    empty = (geoms.isna() | geoms.is_empty).to_numpy()
    repairs = [Repair(str(fid), "empty", "dropped", "the feature has no geometry")
               for fid in frame.loc[empty, id_column]]
    kept = frame.loc[~empty].copy()
    kept = kept.set_geometry(gpd.GeoSeries(shapely.force_2d(np.asarray(kept.geometry.values)),
                                           index=kept.index, crs=frame.crs))
    return kept.reset_index(drop=True), repairs


# columns the service itself adds or relies on: they keep their names, a source column clashing with
# them (ignoring case) is the one renamed
OWN_COLUMNS = ("feature_id", "parcel_id", "name", "geometry")


def unique_columns(frame: gpd.GeoDataFrame, source: str) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Rename attribute columns whose names collide ignoring case (GeoPackage, Shapefile and SQL field
    names are case-insensitive: 'NAME' beside the 'name' we add cannot be written).

    The service's own columns keep their names; among the others the first keeps its name and each
    later one becomes ``<name>_2``, ``<name>_3``... (the first suffix free in any case). One note per
    renamed column.
    """
    columns = [str(c) for c in frame.columns]
    taken: set[str] = set()
    order = sorted(range(len(columns)), key=lambda i: (columns[i] not in OWN_COLUMNS, i))
    renames: dict[str, str] = {}
    notes: list[str] = []
    for i in order:
        name = columns[i]
        if name.lower() not in taken:
            taken.add(name.lower())
            continue
        n = 2
        while f"{name}_{n}".lower() in taken or f"{name}_{n}" in columns:
            n += 1
        new = f"{name}_{n}"
        taken.add(new.lower())
        renames[name] = new
        clash = next(c for c in columns if c.lower() == name.lower() and c not in renames)
        notes.append(f"{source}: attribute {name!r} renamed {new!r}: it collides with {clash!r} ignoring "
                     "case (field names in GeoPackage, Shapefile and databases are case-insensitive)")
    if not renames:
        return frame, notes
    return frame.rename(columns=renames), notes


def _plan_layer(loaded: _Loaded, kind: str, name: str | None) -> PlanLayer:
    raw = loaded.raw
    stem = raw.layer or Path(raw.source.split("!")[-1]).stem
    meta: dict[str, Any] = {"format": raw.fmt, "layer": raw.layer, "id_column": loaded.id_column,
                            "crs_in_wkt": loaded.crs_in.to_wkt()}
    frame, renamed = unique_columns(loaded.frame, raw.source)
    return PlanLayer(kind=kind, name=name or stem, source=raw.source, checksum=raw.checksum,
                     crs_in=crs_label(loaded.crs_in), frame=frame, repairs=tuple(loaded.repairs),
                     notes=(*loaded.notes, *renamed), encoding=raw.encoding, meta=meta)


def _parcel_set(loaded: _Loaded) -> ParcelSet:
    frame = loaded.frame
    if "name" not in frame.columns:
        by_name = _first_by_lower([c for c in frame.columns if c not in ("geometry", "parcel_id")])
        column = next((by_name[c] for c in NAME_COLUMNS if c in by_name), None)
        if column is not None:
            frame.insert(1, "name", frame[column].astype(str).where(frame[column].notna(), None))
    frame, renamed = unique_columns(frame, loaded.raw.source)
    declared = zone3_of_crs(loaded.crs_in) if loaded.raw.fmt == BUBIAO_FORMAT else None
    return ParcelSet(frame=frame, source=loaded.raw.source, crs_in=crs_label(loaded.crs_in),
                     checksum=loaded.raw.checksum, repairs=tuple(loaded.repairs),
                     notes=(*loaded.notes, *renamed), declared_zone=declared,
                     offset_undone=loaded.offset_undone)


# ---------------------------------------------------------------- GeoJSON objects


def _geojson_features(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(obj, dict) or "type" not in obj:
        raise UnreadableLayerError("GeoJSON: not a GeoJSON object (no 'type' member)")
    kind = obj["type"]
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise UnreadableLayerError("GeoJSON: FeatureCollection without a 'features' list")
        return features
    if kind == "Feature":
        return [obj]
    if kind in ("Polygon", "MultiPolygon", "GeometryCollection", "Point", "MultiPoint", "LineString",
                "MultiLineString"):
        return [{"type": "Feature", "geometry": obj, "properties": {}}]
    raise UnreadableLayerError(f"GeoJSON: unknown type {kind!r}")


def _properties(feature: Any, index: int) -> dict[str, Any]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise UnreadableLayerError(f"GeoJSON: feature {index + 1} is not a Feature object")
    raw = feature.get("properties") or {}
    if not isinstance(raw, dict):
        raise UnreadableLayerError(f"GeoJSON: feature {index + 1} has 'properties' that are not an object")
    # nested objects and arrays stay JSON (as GDAL reads them from a file), never Python repr text
    props = {key: json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
             for key, value in raw.items()}
    if "id" in feature and "id" not in props:
        props["id"] = feature["id"]
    return props


def _geojson_geometry(feature: dict[str, Any], index: int) -> Any:
    geom = feature.get("geometry")
    if geom is None:
        return None
    try:
        return shapely.geometry.shape(geom)
    except Exception as exc:  # shapely raises several types for malformed coordinate arrays
        raise UnreadableLayerError(f"GeoJSON: feature {index + 1} has a malformed geometry ({exc})") from exc


def _legacy_crs(obj: dict[str, Any]) -> CRS | None:
    """The pre-RFC 7946 top-level ``crs`` member, if any (named or EPSG-coded)."""
    member = obj.get("crs")
    if not member:
        return None
    props = member.get("properties", {}) if isinstance(member, dict) else {}
    value = props.get("name") or (f"EPSG:{props['code']}" if "code" in props else None)
    if not value:
        raise UnreadableLayerError(f"GeoJSON: cannot understand the 'crs' member {member!r}")
    return parse_crs(str(value))
