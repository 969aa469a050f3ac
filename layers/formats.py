"""layers.formats: open any supported plan-layer or parcel file as a GeoDataFrame in its own CRS."""

from __future__ import annotations

import glob
import io
import re
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS

from layers.archive import check_size, sha256, unpacked
from layers.encoding import check_encoding, detect_text_encoding, shapefile_encoding
from layers.errors import (
    AmbiguousLayerError,
    FileTooLargeError,
    GeometryTypeError,
    LayerError,
    OneBlueprintError,
    UnreadableLayerError,
    UnsupportedFormatError,
)
from layers.model import Limits

FORMATS: dict[str, str] = {
    ".shp": "ESRI Shapefile", ".zip": "zip", ".gpkg": "GeoPackage", ".geojson": "GeoJSON",
    ".json": "GeoJSON", ".fgb": "FlatGeobuf", ".kml": "KML", ".kmz": "KML", ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet", ".dxf": "DXF", ".csv": "CSV", ".txt": "部标 TXT", ".tif": "GeoTIFF",
    ".tiff": "GeoTIFF",
}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".shp.xml")
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "shape", "几何", "坐标")
BUBIAO_MARKERS = ("[地块坐标]", "[属性描述]")
KML_BOILERPLATE = ("description", "timestamp", "begin", "end", "altitudeMode", "tessellate", "extrude",
                   "visibility", "drawOrder", "icon")
DXF_KEEP = ("Layer", "EntityHandle")
PEEK_BYTES = 64 * 1024
SHAPE_FILE_CODE = 9994  # first big-endian integer of every .shp and .shx
UTF8_DXF_VERSION = 1021  # AC1021 = AutoCAD 2007, the first DXF version whose text is always UTF-8


_DXF_LOCK = threading.Lock()


class NoSuchLayerError(LayerError, ValueError):
    """The named layer (or archive member, or CAD layer) is not in the file."""

    code = "no_such_layer"


@dataclass
class RawLayer:
    """A file as read: geometries in the source CRS (``crs`` None when the file states none)."""

    frame: gpd.GeoDataFrame
    crs: CRS | None
    fmt: str
    source: str
    checksum: str
    implied: bool = False  # the CRS is only what the format assumes (GeoJSON/KML: EPSG:4326)
    encoding: str | None = None
    layer: str | None = None
    notes: list[str] = field(default_factory=list)


def supported() -> str:
    return ", ".join(sorted(FORMATS))


def shapefile_parts(shp: Path) -> list[Path]:
    """The .shp and its sibling files (any case), in a fixed order, for size and checksum."""
    siblings = {p.name.lower(): p for p in shp.parent.glob(glob.escape(shp.stem) + ".*")}
    return [siblings[n] for n in (shp.stem.lower() + s for s in SHAPEFILE_PARTS) if n in siblings]


def read_source(path: Path, *, crs: CRS | None = None, encoding: str | None = None,
                layer: str | None = None, limits: Limits = Limits(),
                raster_values: Sequence[float] | None = None) -> RawLayer:
    """Read ``path`` (any supported format, or a zip holding one) into a :class:`RawLayer`."""
    if not path.is_file():
        raise UnreadableLayerError(f"{path.name}: no such file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UnsupportedFormatError(f"{path.name}: unsupported format {suffix or '(no extension)'}; "
                                     f"supported: {supported()}")
    parts = shapefile_parts(path) if suffix == ".shp" else [path]
    check_size(parts, limits, path.name)
    checksum = sha256(parts)
    if suffix == ".zip":
        with _dataset_in_zip(path, layer, limits) as (inner, inner_layer):
            raw = _read_file(inner, crs, encoding, inner_layer, limits, raster_values)
        raw.source = f"{path.name}!{inner.name}"
    else:
        raw = _read_file(path, crs, encoding, layer, limits, raster_values)
    raw.checksum = checksum
    return raw


@contextmanager
def _dataset_in_zip(path: Path, layer: str | None, limits: Limits) -> Iterator[tuple[Path, str | None]]:
    """The one dataset inside a zip (chosen by ``layer`` when there are several) and the inner layer."""
    with unpacked(path, limits) as files:
        candidates = sorted((f for f in files if f.suffix.lower() in FORMATS and f.suffix.lower() != ".zip"
                             and not f.name.startswith(("._", "."))), key=lambda f: str(f))
        # a read-me beside the data is not a dataset; only 部标 text files count
        candidates = [f for f in candidates if f.suffix.lower() != ".txt" or _is_bubiao(f)]
        if not candidates:
            names = ", ".join(f.name for f in files) or "nothing"
            raise UnsupportedFormatError(f"{path.name}: holds no supported dataset ({names}); "
                                         f"supported: {supported()}")
        if len(candidates) == 1:
            yield candidates[0], layer
            return
        if layer is None:
            names = ", ".join(f.stem for f in candidates)
            raise AmbiguousLayerError(f"{path.name}: holds {len(candidates)} datasets ({names}); "
                                      "name one with --layer")
        chosen = [f for f in candidates if f.stem == layer or f.name == layer]
        if not chosen:
            chosen = [f for f in candidates if f.stem.lower() == layer.lower()]
        if len(chosen) != 1:
            names = ", ".join(f.stem for f in candidates)
            raise NoSuchLayerError(f"{path.name}: no dataset named {layer!r}; it holds {names}")
        yield chosen[0], None


def _read_file(path: Path, crs: CRS | None, encoding: str | None, layer: str | None, limits: Limits,
               raster_values: Sequence[float] | None) -> RawLayer:
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            from layers.raster import read_raster

            frame, raster_crs, notes = read_raster(path, values=raster_values, limits=limits)
            return RawLayer(frame, raster_crs, "GeoTIFF", path.name, "", notes=notes)
        if suffix == ".txt":
            return _read_bubiao(path, encoding)
        if suffix == ".csv":
            return _read_csv(path, encoding, limits)
        if suffix in (".parquet", ".geoparquet"):
            return _read_parquet(path, limits)
        if suffix == ".dxf":
            return _read_dxf(path, layer, limits)
        return _read_ogr(path, encoding, layer, limits)
    except OneBlueprintError:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError,
            pyogrio.errors.GeometryError, pyogrio.errors.CRSError, OSError, ValueError, RuntimeError,
            KeyError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableLayerError(f"{path.name}: cannot be read as {FORMATS[suffix]} ({reason})",
                                   detail=str(exc)) from exc


def _check_feature_count(count: int, limits: Limits, source: str) -> None:
    if count > limits.max_features:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_features", f"{count:,} features"))


def _choose_layer(path: Path, layer: str | None) -> str | None:
    """The layer to read: the named one, or the only spatial one; several and none named is ambiguous."""
    listed = pyogrio.list_layers(path)
    spatial = [str(name) for name, geom_type in listed if geom_type is not None]
    names = spatial or [str(name) for name, _ in listed]
    if layer is not None:
        if layer not in names:
            raise NoSuchLayerError(f"{path.name}: no layer named {layer!r}; layers: {', '.join(names)}")
        return layer
    if len(names) > 1:
        raise AmbiguousLayerError(f"{path.name}: holds {len(names)} layers ({', '.join(names)}); "
                                  "name one with --layer")
    return names[0] if names else None


def _implied_crs(path: Path, fmt: str) -> bool:
    """GeoJSON without a ``crs`` member and KML are EPSG:4326 only by assumption."""
    if fmt == "KML":
        return True
    if fmt != "GeoJSON":
        return False
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            if b'"crs"' in chunk:
                return False
    return True


def _read_ogr(path: Path, encoding: str | None, layer: str | None, limits: Limits) -> RawLayer:
    """Shapefile, GeoPackage, GeoJSON, FlatGeobuf, KML through pyogrio (GDAL)."""
    fmt = FORMATS[path.suffix.lower()]
    notes: list[str] = []
    chosen_encoding = None
    label = None  # the encoding GDAL decodes with when it decides itself (.cpg, DBF language byte)
    if fmt == "ESRI Shapefile":
        check_shapefile_parts(path)
        choice = shapefile_encoding(path, encoding)
        chosen_encoding, label = choice.encoding, choice.label
        notes.append(choice.note)
    elif encoding:
        chosen_encoding = check_encoding(encoding, path.name)
    name = _choose_layer(path, layer)
    info = pyogrio.read_info(path, layer=name, encoding=chosen_encoding)
    _check_feature_count(int(info["features"]), limits, path.name)
    frame = pyogrio.read_dataframe(path, layer=name, encoding=chosen_encoding)
    if fmt == "KML":
        frame = _drop_kml_boilerplate(frame)
    # pyogrio's info names the encoding it hands text over in (UTF-8 after GDAL recodes), not the file's
    encoding_used = chosen_encoding or label or info.get("encoding")
    return RawLayer(frame, frame.crs, fmt, path.name, "", implied=_implied_crs(path, fmt),
                    encoding=encoding_used, layer=name, notes=notes)


def check_shapefile_parts(shp: Path) -> None:
    """GDAL reads a truncated .shp as features without geometry; compare each part with its header."""
    parts = {p.suffix.lower(): p for p in shapefile_parts(shp)}
    for suffix in (".shp", ".shx"):
        part = parts.get(suffix)
        if part is None:
            continue
        size = part.stat().st_size
        with part.open("rb") as handle:
            header = handle.read(28)
        if len(header) < 28 or struct.unpack(">i", header[:4])[0] != SHAPE_FILE_CODE:
            raise UnreadableLayerError(f"{part.name}: not a Shapefile part (bad header)")
        declared = struct.unpack(">i", header[24:28])[0] * 2  # length in 16-bit words
        if declared != size:
            raise UnreadableLayerError(f"{part.name}: truncated or corrupt (header says {declared:,} bytes, "
                                       f"the file has {size:,})")
    dbf = parts.get(".dbf")
    if dbf is not None:
        with dbf.open("rb") as handle:
            header = handle.read(12)
        if len(header) < 12:
            raise UnreadableLayerError(f"{dbf.name}: truncated (no DBF header)")
        records, header_len, record_len = struct.unpack("<IHH", header[4:12])
        needed = header_len + records * record_len
        if dbf.stat().st_size < needed:
            raise UnreadableLayerError(f"{dbf.name}: truncated ({records:,} records need {needed:,} bytes, "
                                       f"the file has {dbf.stat().st_size:,})")


def _drop_kml_boilerplate(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """LIBKML adds styling columns to every layer; keep them only where they carry values."""
    empty = [c for c in KML_BOILERPLATE if c in frame.columns and frame[c].isna().all()]
    return frame.drop(columns=empty)


def _read_dxf(path: Path, layer: str | None, limits: Limits) -> RawLayer:
    """Closed LWPOLYLINE/POLYLINE and HATCH entities as polygons; other entities are set aside.

    ``layer`` selects a CAD layer. DXF states no CRS, so one must be declared.
    """
    info = pyogrio.read_info(path)
    _check_feature_count(int(info["features"]), limits, path.name)
    # GDAL returns closed polylines as line strings unless asked, and decodes by $DWGCODEPAGE even
    # where the DXF version mandates UTF-8; the options are process-wide, so set only around this read
    options = {"DXF_CLOSED_LINE_AS_POLYGON": "TRUE", "DXF_ENCODING": _dxf_encoding(path)}
    with _DXF_LOCK:  # API threads reading two DXFs at once must not reset each other's options
        pyogrio.set_gdal_config_options(options)
        try:
            frame = pyogrio.read_dataframe(path)
        finally:
            pyogrio.set_gdal_config_options(dict.fromkeys(options))
    notes: list[str] = []
    if layer is not None:
        cad_layers = sorted(set(frame["Layer"].astype(str)))
        if layer not in cad_layers:
            raise NoSuchLayerError(f"{path.name}: no CAD layer named {layer!r}; layers: "
                                   f"{', '.join(cad_layers)}")
        frame = frame[frame["Layer"] == layer]
    types = frame.geometry.geom_type
    polygonal = types.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if (~polygonal).any():
        dropped = types[~polygonal].fillna("no geometry").value_counts()
        listing = ", ".join(f"{n} {t}" for t, n in dropped.items())
        notes.append(f"{path.name}: set aside {int((~polygonal).sum())} entities that are not closed "
                     f"polylines or hatches ({listing})")
    if not polygonal.any():
        raise GeometryTypeError(f"{path.name}: no closed polylines or hatches (polygons) in the drawing")
    frame = frame.loc[polygonal, [c for c in DXF_KEEP if c in frame.columns] + ["geometry"]]
    return RawLayer(frame.reset_index(drop=True), None, "DXF", path.name, "", notes=notes)


def _dxf_encoding(path: Path) -> str | None:
    """UTF-8 for AutoCAD 2007+ files (AC1021 and later); older ones follow their $DWGCODEPAGE."""
    with path.open("rb") as handle:
        head = handle.read(PEEK_BYTES)
    match = re.search(rb"\$ACADVER\s*\r?\n\s*1\s*\r?\n\s*AC(\d{4})", head)
    return "UTF-8" if match and int(match.group(1)) >= UTF8_DXF_VERSION else None


def _read_parquet(path: Path, limits: Limits) -> RawLayer:
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    _check_feature_count(rows, limits, path.name)
    frame = gpd.read_parquet(path)
    return RawLayer(frame, frame.crs, "GeoParquet", path.name, "")


def _read_csv(path: Path, encoding: str | None, limits: Limits) -> RawLayer:
    """A CSV with one WKT column (wkt/geometry/geom/..., or the first column holding WKT)."""
    data = path.read_bytes()
    if encoding:
        chosen = check_encoding(encoding, path.name)
        note = f"text encoding {chosen} as declared"
    else:
        chosen = detect_text_encoding([data.removeprefix(b"\xef\xbb\xbf")], path.name) or "UTF-8"
        note = f"text encoding detected as {chosen}"
    try:
        text = data.decode("utf-8-sig" if chosen.upper() in ("UTF-8", "UTF8") else chosen)
    except UnicodeDecodeError as exc:
        raise UnreadableLayerError(f"{path.name}: cannot be decoded as {chosen} ({exc})") from exc
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    _check_feature_count(len(table), limits, path.name)
    column = _wkt_column(table, path.name)
    values = table[column].to_numpy(dtype=object)
    geoms = shapely.from_wkt(np.where(values == "", None, values), on_invalid="ignore")
    bad = np.flatnonzero((values != "") & pd.isna(geoms))
    if len(bad):
        row = int(bad[0])
        raise UnreadableLayerError(f"{path.name}: row {row + 2}, column {column!r}: not valid WKT "
                                   f"({str(values[row])[:60]!r})")
    frame = gpd.GeoDataFrame(table.drop(columns=[column]), geometry=geoms, crs=None)
    return RawLayer(frame, None, "CSV", path.name, "", encoding=chosen, notes=[note])


def _wkt_column(table: pd.DataFrame, source: str) -> str:
    by_name = {str(c).strip().lower(): str(c) for c in table.columns}
    for candidate in WKT_COLUMNS:
        if candidate in by_name:
            return by_name[candidate]
    for column in table.columns:
        first = next((v for v in table[column] if v), None)
        if first is not None and shapely.from_wkt(first, on_invalid="ignore") is not None:
            return str(column)
    raise UnreadableLayerError(f"{source}: no WKT geometry column (expected one named "
                               f"{', '.join(WKT_COLUMNS)})")


def _is_bubiao(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(PEEK_BYTES)
    texts = (head.decode("utf-8", errors="ignore"), head.decode("gb18030", errors="ignore"))
    return any(marker in text for marker in BUBIAO_MARKERS for text in texts)


def _read_bubiao(path: Path, encoding: str | None) -> RawLayer:
    """部标 coordinate TXT, read by layers.bubiao (imported here only when needed)."""
    if not _is_bubiao(path):
        raise UnsupportedFormatError(f"{path.name}: a .txt file is read only as a 部标 coordinate file "
                                     "(with [属性描述] and [地块坐标] sections)")
    from layers.bubiao import read_bubiao

    parsed = read_bubiao(path, encoding=encoding)
    keys = ("坐标系", "几度分带", "带号")
    header = ", ".join(f"{k}={parsed.header[k]}" for k in keys if k in parsed.header)
    return RawLayer(parsed.frame, parsed.crs, "部标 TXT", path.name, "", encoding=encoding,
                    notes=[f"{path.name}: 部标 header {header}"])
