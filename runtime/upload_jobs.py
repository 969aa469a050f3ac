"""runtime.upload_jobs: a plan-layer import and a blueprint build as durable jobs (queued, run, resumed).

A large layer upload is streamed to the data dir (api.uploads), moved into the job's input folder and
queued before the 202; the worker imports it chunk by chunk (layers.stream), recording "features read /
total, chunk n of m" as the job's progress. The import is one transaction, so a worker killed in the
middle leaves nothing stored and the next worker starts again; one killed after the commit finds its
layer stored from the same file (same checksum) and ends the job with it. The input folder goes when the
job ends (approval.jobs). A build job recomputes the merge from the stored layers; the draft it saves is
recorded on the job in the same transaction, so a retaken build ends with that draft.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from approval.audit import Principal
from approval.jobs import Handler, Progress
from layers.crs import parse_crs
from layers.errors import OneBlueprintError
from layers.stream import open_layer

if TYPE_CHECKING:
    from runtime.services import Services

PREFLIGHT_SUFFIXES = (".gpkg", ".shp", ".fgb", ".zip")
LAYER_KIND = "layer_import"
BUILD_KIND = "build"


def queue_layer_import(
    services: Services, path: Path, *, by: Principal, kind: str, crs: str | None = None,
    encoding: str | None = None, layer: str | None = None, name: str | None = None, replace: bool = False,
    fields: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The uploaded file at ``path`` moved (same disk: a rename) into a new job's input folder; the
    queued job."""
    preflight(services, path, kind, crs=crs, encoding=encoding, layer=layer, name=name, fields=fields)
    size = path.stat().st_size

    def keep(folder: Path) -> None:
        os.replace(path, folder / path.name)

    job, _ = services.jobs.create(
        LAYER_KIND, by=by, write_input=keep,
        payload={"file": path.name, "bytes": size, "kind": kind, "crs": crs,
                 "encoding": encoding, "layer": layer, "name": name, "replace": replace,
                 "fields": fields, "by": [by.name, by.role]},
    )
    return job


def preflight(services: Services, path: Path, kind: str, *, crs: str | None, encoding: str | None,
              layer: str | None, name: str | None, fields: dict[str, str] | None = None) -> None:
    """Refuse now what is known before any feature is read, so it is the client's 4xx and not a failed
    job later: an unknown kind and, for the formats read in chunks (GeoPackage, Shapefile, FlatGeobuf,
    zipped too), the file's size, feature count, layer and CRS — opening the layer reads its header only
    (a zip holding another format is read whole here, as it would be by the job)."""
    services.catalogue[kind]
    if path.suffix.lower() not in PREFLIGHT_SUFFIXES:
        return
    with open_layer(path, kind, work_crs=services.settings.work_crs, catalogue=services.catalogue,
                    crs=parse_crs(crs) if crs else None, encoding=encoding, layer=layer, name=name,
                    limits=services.layer_limits, fields=fields):
        pass


def _by(payload: dict[str, Any]) -> Principal:
    name, role = payload.get("by") or ["system", "admin"]
    return Principal(str(name), role)


def run_layer_import(services: Services, job: dict[str, Any], folder: Path, progress: Progress) -> str:
    """Import the job's file; progress follows the chunks as they are stored."""
    payload = job["payload"]
    progress(0.0, {"stage": "reading", "file": payload["file"], "bytes": payload.get("bytes")})
    chunk = [0]

    def stored(read: int, total: int) -> None:
        chunk[0] += 1
        # chunks are of equal size but the last: the count follows from the features read so far
        chunks = max(chunk[0], math.ceil(total * chunk[0] / read)) if read else chunk[0]
        progress(read / total if total else 1.0, {"stage": "importing", "features_read": read,
                 "features_total": total, "chunk": chunk[0], "chunks": chunks})

    summary = services.upload_layer(
        folder / str(payload["file"]), str(payload["kind"]), by=_by(payload), crs=payload.get("crs"),
        encoding=payload.get("encoding"), layer=payload.get("layer"), name=payload.get("name"),
        replace=bool(payload.get("replace")), fields=payload.get("fields") or None, progress=stored,
        resume=True,
    )
    return str(summary["name"])


def build_is_large(services: Services, layer_names: Sequence[str] | None) -> bool:
    """More stored features than ``build_job_features`` in the layers a build would merge."""
    layers = services.stores.layers.list()
    chosen = set(layer_names) if layer_names else None
    features = sum(int(r.get("feature_count") or 0) for r in layers if chosen is None or r["name"] in chosen)
    return features > services.settings.build_job_features


def queue_build(
    services: Services, *, by: Principal, layer_names: Sequence[str] | None, tolerance_m: float | None
) -> dict[str, Any]:
    for name in layer_names or ():
        services.stores.layers.summary(name)  # a missing layer is a 404 now, not a failed job later
    job, _ = services.jobs.create(
        BUILD_KIND, by=by,
        payload={"layers": list(layer_names) if layer_names else None, "tolerance_m": tolerance_m,
                 "by": [by.name, by.role]},
    )
    return job


def run_build(services: Services, job: dict[str, Any], folder: Path, progress: Progress) -> str:
    """Build a draft; the version is recorded on the job in the draft's own transaction, so a run
    taken up again after its worker died past that commit ends with that draft instead of a second."""
    payload, job_id = job["payload"], str(job["job_id"])
    if (saved := _saved_draft(services, job.get("result_id"))) is not None:
        progress(1.0, {"stage": "saved", "version": saved})
        return saved
    progress(0.05, {"stage": "merging"})
    summary = services.build(
        by=_by(payload), layer_names=payload.get("layers"), tolerance_m=payload.get("tolerance_m"),
        on_saved=lambda conn, version: services.jobs.record_result(conn, job_id, version),
    )
    return str(summary["version"])


def _saved_draft(services: Services, version: str | None) -> str | None:
    """The version an earlier run of the job saved, when it is still stored."""
    if not version:
        return None
    try:
        return str(services.stores.blueprints.summary(version)["version"])
    except OneBlueprintError:  # deleted since: build again
        return None


def handlers(services: Services) -> dict[str, Handler]:
    """The job kinds of this module, bound to ``services``."""
    return {
        LAYER_KIND: lambda job, folder, progress: run_layer_import(services, job, folder, progress),
        BUILD_KIND: lambda job, folder, progress: run_build(services, job, folder, progress),
    }
