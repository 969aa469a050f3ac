"""layers.stream: a plan layer read in chunks (reprojected and repaired per chunk) for a bulk store write."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS

from layers.archive import check_size, sha256
from layers.attributes import attributed, normalise_attributes
from layers.catalogue import Catalogue
from layers.crs import (
    DatumParams,
    crs_label,
    offset_name,
    parse_crs,
    require_projected,
    resolve_crs,
    to_work_crs,
)
from layers.encoding import check_encoding, shapefile_encoding
from layers.errors import (
    EmptyLayerError,
    FieldMappingError,
    FileTooLargeError,
    OneBlueprintError,
    UnreadableLayerError,
)
from layers.formats import (  # the same steps read_source takes, one chunk at a time
    FORMATS,
    _choose_layer,
    _dataset_in_zip,
    check_shapefile_parts,
    shapefile_parts,
)
from layers.ingest import (
    FEATURE_ID_COLUMNS,
    CRSInput,
    _choose_ids,
    _id_strings,
    _nested_as_json,
    _normalise_geometry_column,
    _place_ids,
    _refuse_web_map_offset,
    _repair,
    read_layer,
    unique_columns,
)
from layers.model import Limits, PlanLayer, Repair

CHUNK_FEATURES = 100_000  # at most this many features a chunk...
CHUNK_BYTES = 64 * 1024**2  # ...and about this much of the file (a red line's multipolygons are large)
MIN_CHUNK_FEATURES = 500
# formats GDAL can page through without reading from the start again
STREAMED_FORMATS = ("GeoPackage", "ESRI Shapefile", "FlatGeobuf")
ID_COLUMN = "feature_id"


@dataclass
class LayerChunk:
    """Features of one chunk: ``frame`` as in :class:`PlanLayer` (repaired, working CRS)."""

    frame: gpd.GeoDataFrame
    repairs: list[Repair]
    read: int  # source features read so far, this chunk included


@dataclass
class LayerStream:
    """A plan layer as it is being read: what is known before the features, and ``chunks()``.

    ``total`` is the number of source features; the chunks' frames together are the ``frame`` that
    :func:`layers.ingest.read_layer` returns for the same file, with the same repairs and notes.
    """

    kind: str
    name: str
    source: str
    checksum: str
    crs_in: str
    crs_out: str
    encoding: str | None
    notes: list[str]
    meta: dict[str, Any]
    total: int
    chunks: Callable[[], Iterator[LayerChunk]]
    streamed: bool = False  # read in several chunks (False: the whole file at once)


@contextmanager
def open_layer(path: Path | str, kind: str, *, work_crs: CRS, catalogue: Catalogue, crs: CRSInput = None,
               encoding: str | None = None, layer: str | None = None, name: str | None = None,
               limits: Limits = Limits(), raster_values: Sequence[float] | None = None,
               datum_params: DatumParams | None = None,
               chunk_features: int | None = None,
               fields: Mapping[str, str] | None = None) -> Iterator[LayerStream]:
    """:func:`layers.ingest.read_layer` as a stream of chunks of at most ``chunk_features`` features.

    GeoPackage, Shapefile and FlatGeobuf files (also inside a zip) with more features than one chunk
    are read a chunk at a time, so memory stays bounded by the chunk; every other file is read whole
    and handed over as one chunk, and so is a layer declared GCJ-02/BD-09 or read with old-datum
    parameters. Without ``chunk_features`` a chunk is about :data:`CHUNK_BYTES` of the file, at most
    :data:`CHUNK_FEATURES` features. Errors are those of ``read_layer``; a limit passed in a later chunk
    (vertices) or a layer left empty by repairs is raised while iterating.
    """
    path = Path(path)
    spec = catalogue[kind]
    require_projected(work_crs)
    declared = parse_crs(crs) if crs is not None else None
    stream_of = functools.partial(_ogr_stream, work_crs=work_crs, declared=declared, encoding=encoding,
                                  limits=limits, geometry=spec.geometry, chunk_features=chunk_features)
    suffix = path.suffix.lower()
    plain = path.is_file() and datum_params is None and offset_name(declared) is None  # else: whole
    if plain and FORMATS.get(suffix) in STREAMED_FORMATS:
        parts = shapefile_parts(path) if suffix == ".shp" else [path]
        check_size(parts, limits, path.name)
        stream = stream_of(path, path.name, layer=layer)
        if stream is not None:
            yield _attributed(_named(stream, kind, name, sha256(parts)), catalogue, fields)
            return
    elif plain and suffix == ".zip":
        check_size([path], limits, path.name)
        with _dataset_in_zip(path, layer, limits) as (inner, inner_layer):
            if FORMATS.get(inner.suffix.lower()) in STREAMED_FORMATS:
                stream = stream_of(inner, f"{path.name}!{inner.name}", layer=inner_layer)
                if stream is not None:
                    yield _attributed(_named(stream, kind, name, sha256([path])), catalogue, fields)
                    return
    plan = read_layer(path, kind, work_crs=work_crs, catalogue=catalogue, crs=crs, encoding=encoding,
                      layer=layer, name=name, limits=limits, raster_values=raster_values,
                      datum_params=datum_params, fields=fields)
    yield whole(plan)


def _attributed(stream: LayerStream, catalogue: Catalogue, fields: Mapping[str, str] | None) -> LayerStream:
    """The stream with each chunk's canonical attributes added and reported (kinds that carry them)."""
    spec = catalogue[stream.kind]
    if not attributed(spec):
        if fields:
            raise FieldMappingError(f"{stream.source}: a {stream.kind} layer has no attribute fields to "
                                    f"name ({', '.join(fields)})")
        return stream
    chunks = stream.chunks

    def normalised() -> Iterator[LayerChunk]:
        for i, chunk in enumerate(chunks()):
            frame, repairs, notes = normalise_attributes(chunk.frame, spec, catalogue, overrides=fields,
                                                         source=stream.source)
            if i == 0:
                stream.notes.extend(notes)
            yield LayerChunk(frame, [*chunk.repairs, *repairs], read=chunk.read)

    stream.chunks = normalised
    return stream


def whole(plan: PlanLayer) -> LayerStream:
    """A layer already read, as a stream of one chunk."""
    frame = plan.frame

    def chunks() -> Iterator[LayerChunk]:
        yield LayerChunk(frame, list(plan.repairs), read=len(frame))

    return LayerStream(kind=plan.kind, name=plan.name, source=plan.source, checksum=plan.checksum,
                       crs_in=plan.crs_in, crs_out=plan.crs_out, encoding=plan.encoding,
                       notes=list(plan.notes), meta=dict(plan.meta), total=len(frame), chunks=chunks)


def _named(stream: LayerStream, kind: str, name: str | None, checksum: str) -> LayerStream:
    stream.kind, stream.checksum = kind, checksum
    stream.name = name or stream.meta.get("layer") or Path(stream.source.split("!")[-1]).stem
    return stream


@dataclass
class _Source:
    """One OGR layer opened for paging: its layer name, encodings and size.

    ``encoding`` is what the reads are told (None: GDAL decides from .cpg or the DBF), ``reported`` the
    encoding the summary names, as formats._read_ogr does."""

    path: Path
    source: str
    layer: str | None
    encoding: str | None
    reported: str | None
    total: int
    notes: list[str]


def _open_ogr(path: Path, source: str, layer: str | None, encoding: str | None, limits: Limits) -> _Source:
    """What formats._read_ogr does before reading: parts, encoding, layer choice, feature count."""
    notes: list[str] = []
    chosen_encoding = None
    label = None  # the encoding GDAL decodes with when it decides itself (.cpg, DBF language byte)
    if FORMATS[path.suffix.lower()] == "ESRI Shapefile":
        check_shapefile_parts(path)
        choice = shapefile_encoding(path, encoding)
        chosen_encoding, label = choice.encoding, choice.label
        notes.append(choice.note)
    elif encoding:
        chosen_encoding = check_encoding(encoding, path.name)
    name = _choose_layer(path, layer)
    info = pyogrio.read_info(path, layer=name, encoding=chosen_encoding)
    total = int(info["features"])
    if total > limits.max_features:
        raise FileTooLargeError(f"{path.name}: " + limits.exceeded("max_features", f"{total:,} features"))
    return _Source(path, source, name, chosen_encoding, chosen_encoding or label or info.get("encoding"),
                   total, notes)


def chunk_size(path: Path, total: int, chunk_features: int | None = None) -> int:
    """Features a chunk: ``chunk_features`` if given, else about :data:`CHUNK_BYTES` of the file."""
    if chunk_features is not None:
        return max(1, chunk_features)
    size = sum(p.stat().st_size for p in (shapefile_parts(path) if path.suffix.lower() == ".shp" else [path]))
    per_feature = max(1.0, size / max(total, 1))
    return int(min(CHUNK_FEATURES, max(MIN_CHUNK_FEATURES, CHUNK_BYTES // per_feature)))


def _ogr_stream(path: Path, source: str, *, layer: str | None, work_crs: CRS, declared: CRS | None,
                encoding: str | None, limits: Limits, geometry: str,
                chunk_features: int | None) -> LayerStream | None:
    """The stream of an OGR layer with more features than one chunk; None for a smaller one."""
    with _reading(path):
        src = _open_ogr(path, source, layer, encoding, limits)
        step = chunk_size(path, src.total, chunk_features)
        if src.total <= step:
            return None
        info = pyogrio.read_info(path, layer=src.layer, encoding=src.encoding)
        ids_from = _id_column(src)
        bounds = _bounds(src)
        head = pyogrio.read_dataframe(path, layer=src.layer, encoding=src.encoding, max_features=200,
                                      read_geometry=False)
    notes = list(src.notes)
    if ids_from:
        notes.append(f"{ID_COLUMN} from attribute {ids_from!r}")
    file_crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
    crs_in, crs_notes = resolve_crs(file_crs, declared, bounds=bounds, source=source)
    _refuse_web_map_offset(head, crs_in, implied=False, asserted=declared is not None, source=source)
    notes.extend(crs_notes)
    if crs_label(crs_in) != crs_label(work_crs):
        notes.append(f"reprojected {crs_label(crs_in)} → {crs_label(work_crs)}")
    meta = {"format": FORMATS[path.suffix.lower()], "layer": src.layer, "id_column": ids_from,
            "crs_in_wkt": crs_in.to_wkt()}

    stream = LayerStream(kind="", name="", source=source, checksum="", crs_in=crs_label(crs_in),
                         crs_out=work_crs.to_string(), encoding=src.reported, notes=notes, meta=meta,
                         total=src.total, chunks=lambda: iter(()), streamed=True)
    # column renames (names clashing ignoring case) are noted after the others, as read_layer does
    stream.chunks = lambda: _chunks(src, ids_from, crs_in, work_crs, limits, geometry, step, stream.notes)
    return stream


def _id_column(src: _Source) -> str | None:
    """The id-like attribute that is complete and unique over the whole layer (attributes only read)."""
    fields = [str(f) for f in pyogrio.read_info(src.path, layer=src.layer, encoding=src.encoding)["fields"]]
    wanted = [f for f in fields if f.strip().lower() in FEATURE_ID_COLUMNS]
    if not wanted:
        return None
    table = pyogrio.read_dataframe(src.path, layer=src.layer, encoding=src.encoding, columns=wanted,
                                   read_geometry=False)
    return _choose_ids(table, FEATURE_ID_COLUMNS)[1]


def _bounds(src: _Source) -> tuple[float, float, float, float]:
    """Total bounds of the present, non-empty geometries (GDAL's layer extent may count empty ones).

    GDAL gives an empty geometry the envelope (0, 0, 0, 0) and a missing one NaN: both are left out.
    """
    _fids, b = pyogrio.read_bounds(src.path, layer=src.layer)
    b = b[:, ~(b == 0).all(axis=0)]
    if b.size == 0 or np.isnan(b).all():
        return (np.nan, np.nan, np.nan, np.nan)
    return (float(np.nanmin(b[0])), float(np.nanmin(b[1])), float(np.nanmax(b[2])), float(np.nanmax(b[3])))


def _chunks(src: _Source, ids_from: str | None, crs_in: CRS, work_crs: CRS, limits: Limits, geometry: str,
            chunk_features: int, notes: list[str]) -> Iterator[LayerChunk]:
    """Read, check, id, reproject and repair ``chunk_features`` features at a time (the steps of
    layers.ingest._finish and _plan_layer); the first chunk's column renames are added to ``notes``."""
    vertices = kept = repaired = 0
    for start in range(0, src.total, chunk_features):
        with _reading(src.path):
            frame = pyogrio.read_dataframe(src.path, layer=src.layer, encoding=src.encoding,
                                           skip_features=start, max_features=chunk_features)
        frame = _nested_as_json(_normalise_geometry_column(frame))
        read = start + len(frame)
        vertices += int(shapely.get_num_coordinates(np.asarray(frame.geometry.values)).sum())
        if vertices > limits.max_vertices:
            raise FileTooLargeError(f"{src.source}: " + limits.exceeded(
                "max_vertices", f"{vertices:,} vertices in its first {read:,} features"))
        frame = _place_ids(frame, ID_COLUMN, _chunk_ids(frame, ids_from, start), ids_from)
        frame = to_work_crs(frame.set_crs(crs_in, allow_override=True), work_crs, source=src.source)
        frame, repairs = _repair(frame, geometry, ID_COLUMN, src.source)
        frame, renamed = unique_columns(frame, src.source)
        if start == 0:
            notes.extend(renamed)
        kept, repaired = kept + len(frame), repaired + len(repairs)
        if read >= src.total and kept == 0:  # as read_layer says it
            raise EmptyLayerError(f"{src.source}: no usable features"
                                  + (f" ({repaired} dropped, see repairs)" if repaired else ""))
        yield LayerChunk(frame, repairs, read=read)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """GDAL's errors as formats._read_file words them: an unreadable file, never a traceback."""
    try:
        yield
    except OneBlueprintError:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError,
            pyogrio.errors.GeometryError, pyogrio.errors.CRSError, OSError, ValueError, RuntimeError,
            KeyError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableLayerError(f"{path.name}: cannot be read as {FORMATS[path.suffix.lower()]} "
                                   f"({reason})", detail=str(exc)) from exc


def _chunk_ids(frame: gpd.GeoDataFrame, ids_from: str | None, start: int) -> pd.Series:
    if ids_from is not None:
        ids = _id_strings(frame[ids_from])
        if ids is not None:
            return ids
    return pd.Series([str(i) for i in range(start + 1, start + len(frame) + 1)], index=frame.index)
