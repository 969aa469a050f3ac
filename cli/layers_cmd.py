"""cli.layers_cmd: `blueprint layers import|inspect` and `blueprint parcels convert` (via cli.main)."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
import typer

from cli.common import domain_errors, emit, note, stderr

CrsOption = Annotated[str | None, typer.Option(
    "--crs", help="CRS of a file that states none, e.g. EPSG:4527; GCJ02 / BD09 for coordinates from "
                  "高德/腾讯 or 百度 web maps (converted exactly)")]
DatumOption = Annotated[str | None, typer.Option(
    "--datum-params", help="7-parameter Helmert set dx,dy,dz,rx,ry,rz,ds (m, arc-seconds, ppm; position "
                           "vector) taking Beijing 1954 / Xi'an 1980 input to CGCS2000")]
EncodingOption = Annotated[str | None, typer.Option(
    "--encoding", help="attribute text encoding, e.g. GB18030; detected when omitted")]
LayerOption = Annotated[str | None, typer.Option(
    "--layer", help="layer of a GeoPackage/KML, dataset inside a zip, or CAD layer of a DXF")]
FieldOption = Annotated[list[str] | None, typer.Option(
    "--field", help="the file's column for an attribute field of the kind, repeatable: RJL=容积率 "
                    "(控规地块: YDDM RJL RJLXX JZMD LDL JZXG; 区域评估: PGLX WH PZRQ YXQZ)")]
RasterOption = Annotated[str | None, typer.Option(
    "--raster-values", help="GeoTIFF cell values forming the zone, comma-separated (default: non-zero)")]

# the layer summary printed by `layers import` (PlanLayer.summary's keys, read back from the store)
SUMMARY_KEYS = ("kind", "name", "source", "checksum", "feature_count", "crs_in", "crs_out", "encoding",
                "area_m2", "repairs", "notes")
# output format by extension: (GDAL driver or pseudo-format, writes EPSG:4326 only)
WRITERS: dict[str, tuple[str, bool]] = {
    ".geojson": ("GeoJSON", True), ".json": ("GeoJSON", True), ".gpkg": ("GPKG", False),
    ".fgb": ("FlatGeobuf", False), ".shp": ("ESRI Shapefile", False), ".zip": ("zip", False),
    ".kml": ("KML", True), ".csv": ("CSV", False), ".parquet": ("GeoParquet", False),
    ".txt": ("部标 TXT", False),
}


def register(app: typer.Typer) -> None:
    """Add the `layers` and `parcels` groups to ``app``."""
    layers = typer.Typer(no_args_is_help=True, help="图层 Plan layers: import and inspect.")
    layers.command("import")(import_layer)
    layers.command("inspect")(inspect_layer)
    app.add_typer(layers, name="layers")
    parcels = typer.Typer(no_args_is_help=True, help="地块 Project parcels: convert between formats.")
    parcels.command("convert")(convert_parcels)
    app.add_typer(parcels, name="parcels")


def _settings() -> Any:
    from runtime.settings import get_settings

    return get_settings()


def _datum_params(text: str | None) -> Any:
    from layers.crs import parse_datum_params

    return parse_datum_params(text) if text else None


def _raster_values(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"not a list of numbers: {text!r}", param_hint="--raster-values") from None


def _notes(notes: Any) -> None:
    for line in notes:
        note(f"  {line}")


def import_layer(
    path: Annotated[Path, typer.Argument(help="the layer file (.shp, .zip, .gpkg, .geojson, .tif, ...)")],
    kind: Annotated[str, typer.Option("--kind", help="catalogue kind, e.g. ecological_redline")],
    crs: CrsOption = None,
    encoding: EncodingOption = None,
    layer: LayerOption = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="stored name (default: file or layer name)")] = None,
    raster_values: RasterOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="replace a stored layer of that name")] = False,
    datum_params: DatumOption = None,
    field: FieldOption = None,
) -> None:
    """导入图层 Import a plan layer: read, check CRS, repair, store; prints a JSON summary.

    Large GeoPackage, Shapefile and FlatGeobuf layers are read, repaired and stored chunk by chunk.
    """
    from layers.attributes import parse_field_overrides
    from layers.catalogue import load_catalogue
    from layers.stream import open_layer
    from runtime.stores import open_stores

    settings = _settings()
    values = _raster_values(raster_values)
    with domain_errors():
        note(f"reading {path.name} as {kind}")
        fields = parse_field_overrides(field) or None
        with open_layer(path, kind, work_crs=settings.work_crs, fields=fields,
                        catalogue=load_catalogue(settings.catalogue_file), crs=crs, encoding=encoding,
                        layer=layer, name=name, limits=settings.layer_limits("cli"),
                        raster_values=values, datum_params=_datum_params(datum_params)) as stream:
            _notes(stream.notes)
            stores = open_stores(settings)
            try:
                with _progress(stream.total if stream.streamed else None) as progress:
                    stored = stores.layers.save_stream(stream, replace=replace, progress=progress)
            finally:
                stores.close()
        note(f"stored layer {stored['name']!r}: {stored['feature_count']} features, "
             f"{len(stored['repairs'])} repair(s)")
    emit({**{k: stored[k] for k in SUMMARY_KEYS},
          "stored": {k: stored.get(k) for k in ("id", "name", "status", "created_at")}})


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr over ``total`` source features (none when None: one chunk)."""
    if total is None:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("features"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr) as bar:
        task = bar.add_task("import", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def inspect_layer(
    path: Annotated[Path, typer.Argument(help="the layer file")],
    kind: Annotated[str | None, typer.Option(
        "--kind", help="catalogue kind (checks its geometry type)")] = None,
    crs: CrsOption = None,
    encoding: EncodingOption = None,
    layer: LayerOption = None,
    raster_values: RasterOption = None,
    datum_params: DatumOption = None,
    field: FieldOption = None,
) -> None:
    """检查图层 Read a layer exactly as import would and print its JSON summary; stores nothing."""
    from layers.attributes import parse_field_overrides
    from layers.catalogue import load_catalogue
    from layers.ingest import inspect_layer as inspect_file
    from layers.ingest import read_layer

    settings = _settings()
    values = _raster_values(raster_values)
    with domain_errors():
        note(f"reading {path.name}")
        common = {"work_crs": settings.work_crs, "crs": crs, "encoding": encoding, "layer": layer,
                  "limits": settings.layer_limits("cli"), "raster_values": values,
                  "datum_params": _datum_params(datum_params)}
        if kind:
            plan = read_layer(path, kind, catalogue=load_catalogue(settings.catalogue_file),
                              fields=parse_field_overrides(field) or None, **common)
        else:
            plan = inspect_file(path, **common)
        _notes(plan.notes)
    columns = [str(c) for c in plan.frame.columns if c != "geometry"]
    bounds = [round(float(v), 3) for v in plan.frame.total_bounds]
    emit({**plan.summary(), "columns": columns, "bounds": bounds})


def convert_parcels(
    source: Annotated[Path, typer.Argument(help="parcels in (any readable format, 部标 .txt included)")],
    target: Annotated[Path, typer.Argument(help="parcels out; format from the extension")],
    crs: CrsOption = None,
    out_crs: Annotated[str | None, typer.Option(
        "--out-crs", help="CRS to write (default: working CRS; GeoJSON/KML always EPSG:4326)")] = None,
    encoding: EncodingOption = None,
    layer: LayerOption = None,
    datum_params: DatumOption = None,
) -> None:
    """转换地块 Convert project parcels between formats, e.g. Shapefile zip → 部标 TXT."""
    from layers.crs import crs_label, offset_name, parse_crs
    from layers.errors import CRSError, UnsupportedFormatError
    from layers.ingest import read_parcels

    settings = _settings()
    with domain_errors():
        suffix = target.suffix.lower()
        if suffix not in WRITERS:
            raise UnsupportedFormatError(f"{target.name}: cannot write {suffix or '(no extension)'}; "
                                         f"writable: {', '.join(sorted(WRITERS))}")
        note(f"reading {source.name}")
        parcels = read_parcels(source, work_crs=settings.work_crs, crs=crs, encoding=encoding, layer=layer,
                               limits=settings.submission_limits("cli"),
                               datum_params=_datum_params(datum_params))
        _notes(parcels.notes)
        frame = parcels.frame
        if out_crs and offset_name(out_crs):
            raise CRSError(f"--out-crs {out_crs}: the service writes no web-map offset datum; write "
                           "EPSG:4326 or EPSG:4490 and let the web map apply its own offset")
        if out_crs:
            frame = frame.to_crs(parse_crs(out_crs))
        elif suffix == ".txt":
            frame = _in_own_zone(frame, parcels.declared_zone)
        # 部标 files carry the zone prefix unless a CRS without one (e.g. EPSG:4548) is asked for
        zone_prefix = not (out_crs and _plain_gk(parse_crs(out_crs)))
        written_crs = _write_atomically(frame, target, suffix, zone_prefix)
        note(f"wrote {len(frame)} parcel(s) to {target}")
    emit({"source": parcels.source, "target": str(target), "format": WRITERS[suffix][0],
          "parcel_count": len(parcels.frame), "crs_in": parcels.crs_in, "crs_out": crs_label(written_crs),
          "checksum": parcels.checksum, **_own_zone_area(parcels),
          "repairs": [r.as_dict() for r in parcels.repairs], "notes": list(parcels.notes)})


def _own_zone_area(parcels: Any) -> dict[str, Any]:
    """Total plane area with each parcel in its own 3-degree zone, and the zones used."""
    import numpy as np

    from checks.areas import plane_zones, zone_areas

    geoms = np.asarray(parcels.frame.geometry.values, dtype=object)
    zones = plane_zones(geoms, parcels.frame.crs, parcels.declared_zone)
    area = float(zone_areas(geoms, parcels.frame.crs, zones).sum())
    return {"area_m2": round(area, 2), "area_zones": sorted({int(z) for z in zones.zone})}


def _in_own_zone(frame: gpd.GeoDataFrame, declared: int | None) -> gpd.GeoDataFrame:
    """Parcels for a 部标 file go into their own 3-degree zone: the one their source file declared,
    else the zone of their centroid (the working CRS's zone would give wrong eastings and areas)."""
    from layers.crs import own_zone3, zone3_crs, zone3_of_crs

    zone = declared or own_zone3(frame)
    if zone is None or zone == zone3_of_crs(frame.crs):
        return frame
    note(f"部标 output in 3-degree zone {zone} (CM {3 * zone}°E), the parcels' own zone")
    return frame.to_crs(zone3_crs(zone))


def _plain_gk(crs: Any) -> bool:
    from layers.crs import gauss_kruger

    gk = gauss_kruger(crs)
    return gk is not None and gk.prefix == 0


def _write_atomically(frame: gpd.GeoDataFrame, target: Path, suffix: str, zone_prefix: bool) -> Any:
    """Write into a temp dir beside ``target`` and move into place: an error leaves nothing behind."""
    from layers.errors import LayerWriteError, OneBlueprintError

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        staged = tmp / target.name
        try:
            if suffix == ".txt":
                written_crs = _write_bubiao(frame, staged, zone_prefix)
            else:
                written_crs = _writer(suffix)(frame, staged)
        except OneBlueprintError:
            raise
        except Exception as exc:  # a driver's refusal is bad input for this format, not a crash
            raise LayerWriteError(f"{target.name}: the {WRITERS[suffix][0]} writer refused the parcels: "
                                  f"{exc}") from exc
        for part in sorted(tmp.iterdir()):
            os.replace(part, target.parent / part.name)
        return written_crs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _writer(suffix: str) -> Callable[[gpd.GeoDataFrame, Path], Any]:
    driver, geographic = WRITERS[suffix]
    if driver == "zip":
        return _write_shapefile_zip
    if driver == "GeoParquet":
        return _write_parquet
    if driver == "CSV":
        return _write_csv

    def write(frame: gpd.GeoDataFrame, path: Path) -> Any:
        from layers.crs import to_output

        out = to_output(frame) if geographic else frame
        options = {"encoding": "UTF-8"} if driver == "ESRI Shapefile" else {}  # writes a .cpg
        out.to_file(path, driver=driver, **options)
        return out.crs

    return write


def _write_bubiao(frame: gpd.GeoDataFrame, path: Path, zone_prefix: bool) -> Any:
    from layers.bubiao import read_bubiao, write_bubiao

    write_bubiao(frame, path, zone_prefix=zone_prefix)
    return read_bubiao(path).crs  # the CRS the file's header and eastings now imply


def _write_shapefile_zip(frame: gpd.GeoDataFrame, path: Path) -> Any:
    parts = path.parent / "parts"
    parts.mkdir()
    frame.to_file(parts / (path.stem + ".shp"), driver="ESRI Shapefile", encoding="UTF-8")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(parts.iterdir()):
            archive.write(part, part.name)
    shutil.rmtree(parts)
    return frame.crs


def _write_parquet(frame: gpd.GeoDataFrame, path: Path) -> Any:
    frame.to_parquet(path)
    return frame.crs


def _write_csv(frame: gpd.GeoDataFrame, path: Path) -> Any:
    table = frame.drop(columns=[frame.geometry.name]).assign(wkt=frame.geometry.to_wkt())
    table.to_csv(path, index=False, encoding="utf-8")
    return frame.crs
