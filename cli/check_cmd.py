"""cli.check_cmd: `blueprint check` (one submission) and `blueprint check-batch` (many parcels → parquet)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import typer

from cli.common import domain_errors, emit, note, stderr
from layers.model import Limits

EXIT_BY_VERDICT = {"pass": 0, "review": 1, "conflict": 2}
# check-batch reads the operator's own files, not uploads: far larger limits than the API's
BATCH_LIMITS = {"max_bytes": 8 * 1024**3, "max_unzipped_bytes": 32 * 1024**3, "max_members": 10_000,
                "max_features": 20_000_000, "max_vertices": 2_000_000_000}
BATCH = Limits(**BATCH_LIMITS, scope="check-batch",
               raise_with=dict.fromkeys(BATCH_LIMITS, "check-batch's limits are fixed: split the input into "
                                                      "several files in one directory"))


def register(app: typer.Typer) -> None:
    """Add `check` and `check-batch` to the root app."""
    app.command("check")(check)
    app.command("check-batch")(check_batch)


def _context(settings: Any) -> tuple[Any, Any, Any]:
    """(stores, catalogue, rules) for the configured database and policy files."""
    from checks.rules import load_rules
    from layers.catalogue import load_catalogue
    from runtime.stores import open_stores

    catalogue = load_catalogue(settings.catalogue_file)
    rules = load_rules(settings.rules_file, catalogue)
    return open_stores(settings), catalogue, rules


def _screener(settings: Any, stores: Any, catalogue: Any, rules: Any, version: str | None,
              keep: list[Any] | None = None) -> Any:
    """The Screener of ``version`` (latest published by default); ``keep`` receives the blueprint."""
    from checks.engine import Screener

    blueprint = stores.blueprints.get(version) if version else stores.blueprints.latest_published()
    if keep is not None:
        keep.append(blueprint)
    from runtime.errors import require_published

    require_published(blueprint.version, blueprint.status)  # as the API answers (409)
    from checks.conditions import load_compatibility

    return Screener(blueprint, rules, catalogue, tolerance_m2=settings.overlap_tolerance_m2,
                    tolerance_ratio=settings.overlap_tolerance_ratio,
                    compatibility=load_compatibility(settings.land_use_compat_file))


def parse_declare(pairs: list[str] | None) -> dict[str, str]:
    """``--declare far=2.8 --declare land_use=1001`` as a mapping (checked by checks.conditions)."""
    from checks.errors import InvalidDeclaredError

    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidDeclaredError(f"--declare {pair!r}: write NAME=VALUE, e.g. far=2.8 or land_use=1001")
        out[name.strip()] = value.strip()
    return out


def parse_check_date(text: str | None) -> Any:
    """``--check-date YYYY-MM-DD`` (default today): the day assessment validity is judged on."""
    import datetime as dt

    from checks.errors import CheckError

    if not text:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CheckError(f"--check-date {text!r} is not a date YYYY-MM-DD") from None


def check(
    parcels: Path = typer.Argument(..., help="parcels: shapefile/zip, GeoPackage, GeoJSON, DXF, 部标 TXT…"),
    project_type: str = typer.Option("industrial", "--project-type", "-t",
                                     help="a group (industrial, residential, public_facility, "
                                          "linear_infrastructure, national_major, agricultural) or a finer "
                                          "type beneath one (tourism_facility, military_facility …; "
                                          "`blueprint rules` lists them)"),
    version: str | None = typer.Option(None, "--version", help="blueprint version (default: latest)"),
    fmt: str = typer.Option("json", "--format", help="json (the result contract) or geojson"),
    crs: str | None = typer.Option(None, "--crs", help="CRS of a file that declares none, e.g. EPSG:4527; "
                                   "GCJ02 / BD09 for coordinates from Chinese web maps"),
    encoding: str | None = typer.Option(None, "--encoding", help="attribute encoding, e.g. GBK"),
    layer: str | None = typer.Option(None, "--layer", help="layer inside a GeoPackage/zip/DXF"),
    save: bool = typer.Option(True, "--save/--no-save", help="store the result under its check_id"),
    datum_params: str | None = typer.Option(
        None, "--datum-params",
        help="dx,dy,dz,rx,ry,rz,ds taking Beijing 1954 / Xi'an 1980 input to CGCS2000"),
    declare: list[str] | None = typer.Option(
        None, "--declare",
        help="the project's own plan, repeatable: land_use=1001 (用地代码), far=2.8 (容积率), "
             "building_density=35 (建筑密度 %), green_ratio=20 (绿地率 %), height_m=24 (建筑高度 m); held "
             "against the detailed-plan parcels (控规地块) the parcels overlap"),
    check_date: str | None = typer.Option(
        None, "--check-date",
        help="YYYY-MM-DD the regional assessments' validity is judged on (default today)"),
) -> None:
    """Screen parcels against a blueprint 项目地块筛查. Exit 0 pass, 1 review, 2 conflict, 3 bad input."""
    from checks.conditions import parse_declared
    from checks.errors import CheckError
    from checks.explain import feature_collection
    from checks.results import result_json
    from layers.crs import parse_datum_params
    from layers.ingest import read_parcels
    from runtime.settings import get_settings

    with domain_errors():
        if fmt not in ("json", "geojson"):  # exit 3 (bad input), not click's 2, which means "conflict" here
            raise CheckError(f"--format must be json or geojson, got {fmt!r}")
        declared = parse_declared(parse_declare(declare))  # a bad value exits 3 before any file is read
        day = parse_check_date(check_date)
        settings = get_settings()
        stores, catalogue, rules = _context(settings)
        try:
            rules.require_project_type(project_type)  # before any file or database work
            screener = _screener(settings, stores, catalogue, rules, version)
            params = parse_datum_params(datum_params) if datum_params else None
            parcel_set = read_parcels(parcels, work_crs=settings.work_crs, crs=crs, encoding=encoding,
                                      layer=layer, limits=settings.submission_limits("cli"),
                                      datum_params=params)
            result = screener.screen(parcel_set, project_type, declared=declared, check_date=day)
            text = result_json(result)
            if save:
                text = stores.checks.save(result["check_id"], text,
                                          blueprint_version=result["blueprint_version"],
                                          project_type=project_type, verdict=result["verdict"],
                                          input_hash=result["input_hash"], by="cli")
        finally:
            stores.close()
    if fmt == "geojson":
        emit(feature_collection(json.loads(text)))
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    verdict = json.loads(text)["verdict"]
    note(f"{verdict}: {json.loads(text)['explanation_zh']}")
    raise typer.Exit(EXIT_BY_VERDICT[verdict])


PARQUET = (".parquet", ".geoparquet")


def _parcel_files(path: Path) -> list[Path]:
    """The parcel files of a directory (one level, sorted), or the file itself."""
    from layers.formats import FORMATS

    if not path.is_dir():
        return [path]
    skip = {".tif", ".tiff", ".csv"}  # rasters are not parcels; CSV sidecars are usually attribute tables
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS
                  and p.suffix.lower() not in skip and not p.name.startswith("."))


def read_batch(path: Path, settings: Any, crs: str | None, encoding: str | None) -> gpd.GeoDataFrame:
    """All parcels of a file or directory in the working CRS; ids prefixed by file name when several."""
    from checks.errors import NoParcelsError
    from layers.ingest import read_parcels

    files = _parcel_files(path)
    if not files:
        raise NoParcelsError(f"{path}: no parcel files found")
    # a directory of parquet files only is one partitioned (Geo)Parquet dataset: its ids are unique across
    # the parts (a duplicate is refused by the screener), so they are not prefixed
    dataset = len(files) > 1 and all(f.suffix.lower() in PARQUET for f in files)
    frames = []
    for file in files:
        parcel_set = read_parcels(file, work_crs=settings.work_crs, crs=crs, encoding=encoding,
                                  limits=BATCH)
        frame = parcel_set.frame[["parcel_id", "geometry"]]
        if len(files) > 1 and not dataset:  # ids are unique per file only
            frame = frame.assign(parcel_id=file.name + ":" + frame["parcel_id"].astype(str))
        frames.append(frame)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=settings.work_crs)


def check_batch(
    parcels: Path = typer.Argument(..., help="a parcel file (GeoParquet too) or a directory of parcel files "
                                            "(a directory of .parquet files is one partitioned dataset)"),
    out: Path = typer.Option(..., "--out", help="a directory: partitioned parquet (part-NNNNN.parquet) and "
                                                "manifest.json, resumable; a name ending in .parquet: one "
                                                "file. One row per parcel × layer"),
    project_type: str = typer.Option("industrial", "--project-type", "-t"),
    version: str | None = typer.Option(None, "--version", help="blueprint version (default: latest)"),
    use_dask: bool = typer.Option(False, "--dask", help="run on dask (a local cluster by default)"),
    scheduler: str | None = typer.Option(None, "--scheduler", help="dask scheduler address, e.g. tcp://h:8786"),
    partitions: int | None = typer.Option(None, "--partitions", min=1,
                                          help="dask partitions (one-file --out)"),
    partition_size: int = typer.Option(20_000, "--partition-size", min=1,
                                       help="parcels per output partition (directory --out)"),
    restart: bool = typer.Option(False, "--restart", help="discard the finished partitions in --out and "
                                                          "start again (also when the input changed)"),
    workers: int = typer.Option(2, "--workers", min=1, help="local dask worker processes"),
    crs: str | None = typer.Option(None, "--crs", help="CRS of files that declare none"),
    encoding: str | None = typer.Option(None, "--encoding"),
    bounded: bool | None = typer.Option(
        None, "--bounded/--whole",
        help="--bounded: each partition loads only the blueprint pieces near it (memory follows the "
             "partition, not the province; directory --out, in process); --whole: the whole version in "
             "memory. Default: bounded above BLUEPRINT_BATCH_BOUNDED_PIECES pieces"),
    pause: float = typer.Option(0.0, "--pause-after-partition", hidden=True, min=0.0,
                                help="seconds to wait after each partition (resume tests)"),
) -> None:
    """Screen many parcels 批量筛查 into parquet and print a summary. Exit 0 ran, 3 bad input.

    With a directory as --out the run is resumable: rerun the same command after an interruption and the
    finished partitions are kept; a changed input, blueprint, rules or option is refused unless --restart."""
    from cli.check_bounded import bounded_regions
    from runtime.settings import get_settings

    started = time.perf_counter()
    distributed = use_dask or bool(scheduler)
    with domain_errors():
        settings = get_settings()
        stores, catalogue, rules = _context(settings)
        try:
            rules.require_project_type(project_type)
            kept: list[Any] = []
            regions = bounded_regions(settings, stores, catalogue, rules, version, bounded, out, distributed)
            screener = (regions.head_screener() if regions is not None
                        else _screener(settings, stores, catalogue, rules, version, kept))
        finally:
            stores.close()  # a bounded run's loader reconnects per partition (the engine stays usable)
        frame = read_batch(parcels, settings, crs, encoding)
        pieces = None if regions is not None else _prepare_pieces(settings, screener, kept[0],
                                                                  write=distributed)
        kept.clear()  # the screener holds what the batch needs: free the frames
        count = regions.piece_count if regions is not None else screener.piece_count
        note(f"{len(frame):,} parcels, blueprint {screener.version} ({count:,} pieces)")
        if out.suffix.lower() == ".parquet":
            summary = _one_file(frame, screener, project_type, out, distributed, scheduler, partitions,
                                workers, pieces)
        else:
            options = json.dumps({"crs": crs, "encoding": encoding}, sort_keys=True)
            summary = _partitioned(frame, screener, project_type, out, parcels, options, partition_size,
                                   restart=restart, scheduler=scheduler if distributed else None,
                                   dask=distributed, workers=workers, pause=pause, pieces=pieces,
                                   regions=regions)
            stores.close()
    emit(summary | {"parcels": len(frame), "blueprint_version": screener.version,
                    "project_type": project_type, "engine": "dask" if distributed else "in-process",
                    "seconds": round(time.perf_counter() - started, 2)})


def _prepare_pieces(settings: Any, screener: Any, blueprint: Any, *, write: bool) -> Any:
    """The version's piece feature sets, read from (or, the first time, saved to) the data dir; with
    ``write`` also the pieces themselves for dask workers to read (checks.batch_pieces)."""
    from checks.batch_fast import feature_sets

    directory = version_dir(settings, screener.version)
    started = time.perf_counter()
    feature_sets(screener, directory)
    note(f"piece feature sets ready in {time.perf_counter() - started:.1f} s ({directory})")
    if not write:
        return None
    from checks.batch_pieces import piece_file
    from checks.conditions import load_compatibility

    try:
        return piece_file(screener, blueprint, directory,
                          compatibility=load_compatibility(settings.land_use_compat_file))
    except OSError as exc:  # a read-only data dir: the workers are sent the screener instead
        note(f"cannot write the pieces for the dask workers to {directory} ({exc}); sending the screener")
        return None


def version_dir(settings: Any, version: str) -> Path:
    """data_dir/versions/<version>/screening: what the batch keeps per published version."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version).lstrip(".") or "_"
    return Path(settings.data_dir) / "versions" / safe / "screening"


def _one_file(frame: gpd.GeoDataFrame, screener: Any, project_type: str, out: Path, distributed: bool,
              scheduler: str | None, partitions: int | None, workers: int,
              pieces: Any = None) -> dict[str, Any]:
    """The whole table in memory, written as one GeoParquet file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from checks.batch import screen_batch
    from checks.distributed import screen_distributed

    columns = (TextColumn("[bold]筛查 screening"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task("screen", total=len(frame))
        if distributed:
            table = screen_distributed(frame, screener, project_type, scheduler=scheduler,
                                       partitions=partitions, n_workers=workers, pieces=pieces)
        else:
            table = screen_batch(frame, screener, project_type,
                                 progress=lambda done, _total: bar.update(task, completed=done))
        bar.update(task, completed=len(frame))
    _write_parquet(table, out)
    verdicts = table.drop_duplicates("parcel_id")["parcel_verdict"].value_counts().to_dict()
    return {"out": str(out), "rows": len(table),
            "verdicts": {str(k): int(v) for k, v in sorted(verdicts.items())}}


def _partitioned(frame: gpd.GeoDataFrame, screener: Any, project_type: str, out: Path, source: Path,
                 options: str, size: int, *, restart: bool, scheduler: str | None, dask: bool, workers: int,
                 pause: float, pieces: Any = None, regions: Any = None) -> dict[str, Any]:
    """Partitioned parquet in ``out`` with a manifest; resumes a killed run of the same input."""
    from checks.batch_runner import run_batch, run_key, split
    from checks.batch_store import BatchDir, input_checksum

    work = screener.validated(frame, "batch")
    parts = split(work, size)
    key = run_key(screener, project_type, input_checksum(_parcel_files(source)), options, size, len(work),
                  bounded=regions is not None)
    batch = BatchDir.open(out, key, [len(p) for p in parts], restart=restart,
                          engine="dask" if dask else "in-process")
    kept = len(parts) - len(batch.pending())
    if kept:
        note(f"resuming: {kept} of {len(parts)} partitions already finished in {out} 续跑")
    with _partition_bar(len(parts), kept, batch.finished_parcels()) as progress:
        if dask:
            from checks.distributed import dask_client

            with dask_client(scheduler, workers) as client:
                run_batch(work, screener, project_type, batch, parts, client=client, progress=progress,
                          pause=pause, pieces=pieces)
        else:
            run_batch(work, screener, project_type, batch, parts, progress=progress, pause=pause,
                      part_screener=regions.screener if regions is not None else None)
    manifest = batch.finish()
    if regions is not None and regions.loaded:
        note(f"bounded: {max(regions.loaded):,} pieces at most in one partition, "
             f"{sum(regions.loaded):,} loaded in all in {regions.load_seconds:.1f} s")
    return {"out": str(out), "manifest": str(out / "manifest.json"), "partitions": len(parts),
            "partitions_resumed": kept, "complete": manifest["complete"], "rows": batch.rows(),
            "verdicts": batch.verdicts()}


@contextmanager
def _partition_bar(total: int, done: int, parcels: int) -> Iterator[Callable[[int, int, int], None]]:
    """A rich bar on stderr: partitions done / total and parcels per second of this run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]筛查 screening 分区 partitions"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} parcels/s"), TimeElapsedColumn())
    started, first = time.perf_counter(), parcels
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task("screen", total=total, completed=done, rate="–")

        def update(done: int, _total: int, parcels: int) -> None:
            rate = (parcels - first) / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f}")

        yield update


def _write_parquet(table: gpd.GeoDataFrame, out: Path) -> None:
    """Write next to ``out`` and rename: an unwritable --out is bad input (exit 3), never half a file."""
    import os
    import tempfile

    from checks.errors import CheckError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(handle)
    except OSError as exc:
        raise CheckError(f"{out}: cannot write the results there ({exc.strerror or exc})") from exc
    try:
        table.to_parquet(temp)
        os.replace(temp, out)
    except OSError as exc:
        raise CheckError(f"{out}: cannot write the results there ({exc.strerror or exc})") from exc
    finally:
        Path(temp).unlink(missing_ok=True)
