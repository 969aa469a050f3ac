"""cli.blueprint_cmd: `blueprint build|publish|versions|conflicts|export` (registered by cli.main)."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import domain_errors, emit, note, stderr
from layers.errors import OneBlueprintError

VersionArgument = Annotated[str, typer.Argument(help="blueprint version, e.g. v3")]
ByOption = Annotated[str, typer.Option("--by", help="who does this (recorded with the version)")]
BUILD_ATTEMPTS = 3  # another build may take the same version number meanwhile


class ExportError(OneBlueprintError):
    """The GeoPackage could not be written."""

    code = "export_failed"


def register(app: typer.Typer) -> None:
    """Add the blueprint commands to the root app."""
    app.command("build")(build)
    app.command("publish")(publish)
    app.command("versions")(versions)
    app.command("conflicts")(conflicts)
    app.command("export")(export)


@contextmanager
def _stores() -> Iterator[Any]:
    """The configured (migrated) database, closed at the end of the command."""
    from runtime.settings import get_settings
    from runtime.stores import open_stores

    stores = open_stores(get_settings())
    try:
        yield stores
    finally:
        stores.close()


def build(
    precedence: Annotated[Path | None, typer.Option(
        "--precedence", help="precedence TOML (default: settings, else the built-in order)")] = None,
    tolerance: Annotated[float | None, typer.Option(
        "--tolerance", help="sliver/gap width in metres absorbed, not reported as conflicts")] = None,
    by: ByOption = "cli",
    out_of_core: Annotated[bool, typer.Option(
        "--out-of-core", help="merge grid cells in batches through GeoParquet under data_dir/versions/<v>/ "
        "(memory bounded by a batch; for provinces). Implied by --workers and --scheduler")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1,
        help="run the cell batches on a local dask cluster of N worker processes")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="run the cell batches on this dask scheduler, e.g. tcp://host:8786 (its workers "
        "must see data_dir)")] = None,
) -> None:
    """Build a draft blueprint 一张蓝图 from the stored layers and print its conflict summary.

    By default the merge runs in memory (fine for a city, ~6 GB at 10⁶ farmland patches); --out-of-core,
    --workers or --scheduler run the same merge batch by batch with the same result."""
    from blueprint.precedence import load_precedence
    from layers.catalogue import load_catalogue
    from runtime.settings import get_settings

    settings = get_settings()
    with domain_errors(), _stores() as stores:
        catalogue = load_catalogue(settings.catalogue_file)
        order = load_precedence(precedence or settings.precedence_file, catalogue)
        layers = stores.layers.load_all()
        boundary = next((layer for layer in layers if catalogue[layer.kind].group == "boundary"), None)
        plan = [layer for layer in layers if layer is not boundary]
        inside = f" inside boundary '{boundary.name}'" if boundary else ""
        note(f"building from {len(plan)} layers{inside}")
        tolerance_m = settings.tolerance_m if tolerance is None else tolerance
        if out_of_core or workers or scheduler:
            blueprint, parts = _build_out_of_core(stores, plan, boundary, catalogue, order, tolerance_m, by,
                                                  settings.data_dir, workers, scheduler)
        else:
            blueprint, parts = _build(stores, plan, boundary, catalogue, order, tolerance_m, by), []
        summary = _save_draft(stores, blueprint, parts)
    emit({"version": summary["version"], "status": summary["status"],
          "conflicts": conflict_summary(blueprint.conflicts), "summary": summary})


def _build(stores: Any, plan: list[Any], boundary: Any, catalogue: Any, order: Any, tolerance_m: float,
           by: str) -> Any:
    from blueprint.merge import build_blueprint

    with _progress() as progress:
        return build_blueprint(plan, catalogue=catalogue, precedence=order, tolerance_m=tolerance_m,
                               version=stores.blueprints.next_version(), created_by=by,
                               boundary=boundary, progress=progress)


def _build_out_of_core(stores: Any, plan: list[Any], boundary: Any, catalogue: Any, order: Any,
                       tolerance_m: float, by: str, data_dir: Path, workers: int | None,
                       scheduler: str | None) -> tuple[Any, list[Path]]:
    from blueprint.partitioned import build_partitioned, sources_from_layers
    from blueprint.tasks import dask_runner, local_runner

    version = stores.blueprints.next_version()
    out = data_dir / "versions" / version
    where = f"dask scheduler {scheduler}" if scheduler else (
        f"a local dask cluster of {workers} workers" if workers else "this process")
    note(f"out-of-core build into {out} on {where}")
    with _progress() as progress:
        if workers or scheduler:
            with dask_runner(scheduler, workers or 2) as runner:
                built = build_partitioned(sources_from_layers(plan, boundary), out, catalogue=catalogue,
                                          precedence=order, tolerance_m=tolerance_m, version=version,
                                          created_by=by, progress=progress, runner=runner)
        else:
            built = build_partitioned(sources_from_layers(plan, boundary), out, catalogue=catalogue,
                                      precedence=order, tolerance_m=tolerance_m, version=version,
                                      created_by=by, progress=progress, runner=local_runner())
    return built.blueprint, built.parts


def _save_draft(stores: Any, blueprint: Any, parts: list[Path] | None = None) -> dict[str, Any]:
    from blueprint.store import BlueprintVersionExistsError

    for attempt in range(BUILD_ATTEMPTS):
        try:
            return dict(stores.blueprints.save_draft(blueprint, piece_parts=parts or ()))
        except BlueprintVersionExistsError:
            if attempt == BUILD_ATTEMPTS - 1:
                raise
            blueprint.version = stores.blueprints.next_version()
            note(f"version taken by another build meanwhile; saving as {blueprint.version}")
    raise AssertionError("unreachable")


@contextmanager
def _progress() -> Iterator[Callable[[str, float], None]]:
    """A rich progress bar on stderr fed by the merge's (stage, fraction) callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=stderr, transient=False) as bar:
        task = bar.add_task("merging", total=1.0)

        def report(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=fraction)

        yield report


def conflict_summary(frame: Any) -> dict[str, Any]:
    """Count and area of the conflicts, in total and per (kind_a, kind_b, rule)."""
    groups = []
    if len(frame):
        grouped = frame.groupby(["kind_a", "kind_b", "rule", "winner"], sort=True)["area_m2"]
        for (kind_a, kind_b, rule, winner), areas in grouped:
            groups.append({"kind_a": kind_a, "kind_b": kind_b, "rule": rule, "winner": winner,
                           "count": len(areas), "area_m2": round(float(areas.sum()), 2)})
    return {"count": len(frame), "area_m2": round(float(frame["area_m2"].sum()), 2) if len(frame) else 0.0,
            "by_pair": groups}


def publish(version: VersionArgument, by: ByOption = "cli") -> None:
    """Publish a draft version 发布; it becomes immutable and the default for checks. Projects in flight
    are re-screened against it by a worker (`blueprint serve` or `blueprint worker`)."""
    from approval.audit import Principal
    from approval.rescreen import on_publish

    with domain_errors(), _stores() as stores:
        summary = stores.blueprints.publish(version, by, also=on_publish(version, Principal(by, "admin")))
    note(f"published {version}")
    emit(summary)


def versions() -> None:
    """List every blueprint version with its status, provenance and totals."""
    with domain_errors(), _stores() as stores:
        emit({"versions": stores.blueprints.versions()})


def conflicts(
    version: VersionArgument,
    fmt: Annotated[str, typer.Option("--format", help="geojson (EPSG:4326) or csv")] = "geojson",
) -> None:
    """The conflict list 差异图斑 of a version, as GeoJSON (EPSG:4326) or CSV on stdout."""
    if fmt not in ("geojson", "csv"):
        raise typer.BadParameter("geojson or csv", param_hint="--format")
    with domain_errors(), _stores() as stores:
        frame = stores.blueprints.conflicts(version)
    if fmt == "csv":
        _write_csv(frame)
    else:
        emit(conflicts_geojson(frame))


def conflicts_geojson(frame: Any) -> dict[str, Any]:
    """A FeatureCollection in EPSG:4326 with ``feature_ids`` as an object, not JSON text."""
    from layers.crs import to_output

    collection: dict[str, Any] = json.loads(to_output(frame).to_json(drop_id=True))
    for feature in collection["features"]:
        feature["properties"]["feature_ids"] = json.loads(feature["properties"]["feature_ids"])
    return collection


def _write_csv(frame: Any) -> None:
    """One row per conflict; the location as a centroid in EPSG:4326 instead of the geometry."""
    from layers.crs import to_output

    centroids = to_output(frame.geometry.centroid) if len(frame) else frame.geometry
    table = frame.drop(columns=frame.geometry.name)
    table["centroid_lon"] = [round(p.x, 7) for p in centroids]
    table["centroid_lat"] = [round(p.y, 7) for p in centroids]
    table.to_csv(sys.stdout, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    sys.stdout.flush()


def export(
    version: VersionArgument,
    out: Annotated[Path, typer.Argument(help="the GeoPackage to write (replaced atomically)")],
) -> None:
    """Write a version's pieces and conflicts as two layers of one GeoPackage (working CRS)."""
    with domain_errors(), _stores() as stores:
        blueprint = stores.blueprints.get(version)
        if out.suffix.lower() != ".gpkg":
            raise ExportError(f"{out}: the export is a GeoPackage, name it *.gpkg")
        _write_gpkg(blueprint, out)
    note(f"wrote {out}")
    emit({"version": version, "path": str(out), "pieces": len(blueprint.pieces),
          "conflicts": len(blueprint.conflicts), "crs": blueprint.crs.to_string()})


def _write_gpkg(blueprint: Any, out: Path) -> None:
    """Write next to ``out`` and rename: readers never see a half-written file."""
    target = out.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".gpkg", dir=target.parent)
        os.close(handle)
        os.unlink(temp)  # GDAL creates the file itself
    except OSError as exc:
        raise ExportError(f"{out}: cannot write there ({exc.strerror})") from exc
    try:
        for layer, frame in (("pieces", blueprint.pieces), ("conflicts", blueprint.conflicts)):
            # one declared type per layer (also when empty), as QGIS and ArcGIS expect
            frame.to_file(temp, layer=layer, driver="GPKG", engine="pyogrio", promote_to_multi=True,
                          geometry_type="MultiPolygon")
        os.replace(temp, target)
    except Exception as exc:
        Path(temp).unlink(missing_ok=True)
        raise ExportError(f"{out}: writing the GeoPackage failed ({exc})") from exc
