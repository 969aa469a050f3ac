"""runtime.services: the application services (stores, policy, screener cache, jobs) the API, the CLI's worker
and the viewer's source delegate to."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import mapping
from sqlalchemy.engine import Connection

from approval import parcel_history
from approval.audit import AuditLog, Principal
from approval.calendar import load_calendar
from approval.departments import load_departments
from approval.errors import (
    InvalidTransitionError,
    PermissionDeniedError,
    ProjectNotInPoolError,
    StaleCheckError,
)
from approval.jobs import Handler, JobStore
from approval.outbox import Outbox
from approval.planning import Planning
from approval.pool import NewProject, ProjectStore
from approval.rescreen import KIND as RESCREEN_KIND
from approval.rescreen import on_publish
from approval.worker import Worker
from blueprint.merge import build_blueprint
from blueprint.precedence import Precedence, load_precedence
from blueprint.store import BlueprintVersionExistsError
from checks.conditions import parse_declared
from checks.errors import NoParcelsError
from checks.results import result_json
from checks.rules import Rules, load_rules
from checks.submission import parcel_count
from layers.catalogue import Catalogue, load_catalogue
from layers.crs import parse_crs, to_output
from layers.errors import OneBlueprintError
from layers.geojson_rows import ParcelRows
from layers.model import Limits, ParcelSet, parcel_set_from, parcel_set_meta
from layers.stream import open_layer
from runtime import rescreen, upload_jobs
from runtime.caches import CheckOutcome, LayerCache, PublishedCache
from runtime.errors import IdempotencyConflictError, InvalidRequestError
from runtime.geojson import feature_collection
from runtime.keys import DEV_KEYS, KeyRing, KeyStore, load_key_file
from runtime.latest import LatestPublished
from runtime.settings import Settings
from runtime.stores import Stores, open_stores

log = logging.getLogger("runtime.services")

MAX_IDEMPOTENCY_KEY = 200  # stored with a 17-character caller prefix in a 255-character column


class Services:
    """Everything a request needs, built once per app by :meth:`open` (never at import)."""

    # the day assessment validity is judged on (区域评估 有效期); tests set a fixed day
    today: Callable[[], dt.date] = staticmethod(dt.date.today)

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings = settings
        self.stores = stores
        self.engine = stores.engine
        self.catalogue: Catalogue = load_catalogue(settings.catalogue_file)
        self.precedence: Precedence = load_precedence(settings.precedence_file, self.catalogue)
        self.rules: Rules = load_rules(settings.rules_file, self.catalogue)
        self.audit = AuditLog(self.engine)
        self.keys = KeyStore(self.engine, cache_seconds=settings.key_cache_seconds)
        self.keyring = KeyRing(self.keys, dev_mode=settings.dev_mode, key_file=settings.api_keys_file)
        self.projects = ProjectStore(self.engine, settings.work_crs)
        self.jobs = JobStore(self.engine, settings.data_dir, lease_seconds=settings.job_lease_seconds)
        self.published = PublishedCache(stores, self.rules, self.catalogue, settings,
                                        folder=settings.data_dir / "screeners")
        self.latest = LatestPublished(stores.blueprints)
        self.layer_cache = LayerCache(stores)
        # CPU-bound work (reading parcels, screening) runs a few at a time: under the GIL, 40 threads
        # screening at once only slow each other down and starve the light requests (reads, searches)
        self.cpu_workers = max(2, os.cpu_count() or 2)
        self.cpu_slots = threading.BoundedSemaphore(self.cpu_workers)
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._gates_lock = threading.Lock()
        self.job_threshold = settings.job_parcel_threshold
        self.job_vertex_threshold = settings.job_vertex_threshold
        self.worker: Worker | None = None
        self.extra_handlers: dict[str, Handler] = {}
        self.departments = load_departments(settings.departments_file)
        self.planning = Planning(self.projects, self.departments, load_calendar(settings.calendar_file))
        self.outbox = Outbox(self.engine, timeout=settings.webhook_timeout_seconds)

    @classmethod
    def open(cls, settings: Settings) -> Services:
        if settings.dev_mode:
            log.warning("!" * 72)
            log.warning(
                "DEV MODE: the well-known development API keys (%s) are accepted. "
                "Never run dev mode on a reachable network.",
                ", ".join(DEV_KEYS.values()),
            )
            log.warning("!" * 72)
        if settings.api_keys_file is not None:
            load_key_file(settings.api_keys_file)  # a malformed file fails before the database is opened
        load_departments(settings.departments_file)  # so do malformed departments and calendar files
        load_calendar(settings.calendar_file)
        return cls(settings, open_stores(settings))

    def close(self) -> None:
        self.stop_worker()
        self.stores.close()

    # ------------------------------------------------------------------------------ durable jobs

    def job_handlers(self) -> dict[str, Handler]:
        """Every kind of durable job this service runs (a worker process runs the same ones)."""
        return {
            "check": self._check_job,
            RESCREEN_KIND: lambda job, folder, progress: rescreen.run(self, job, folder, progress),
            **upload_jobs.handlers(self),
            "webhook": self.outbox.run,
            **self.extra_handlers,
        }

    def register_job_handler(self, kind: str, handler: Handler) -> None:
        """A job kind run by code the service does not import itself (the viewer's tile archives)."""
        self.extra_handlers[kind] = handler

    def start_worker(self) -> Worker:
        """A worker thread in this process (``blueprint serve`` does this; ``blueprint worker`` runs more)."""
        if self.worker is None:
            self.worker = Worker(self.jobs, self.job_handlers()).start()
            self.outbox.start(self.settings.webhook_sweep_seconds)
        return self.worker

    def stop_worker(self) -> None:
        self.outbox.stop()
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()

    def cpu_gate(self) -> asyncio.Semaphore:
        """Admission to CPU-bound request work, taken *before* a threadpool thread is used, so waiting
        requests hold no thread and reads keep flowing. One per event loop (tests run several)."""
        loop = asyncio.get_running_loop()
        with self._gates_lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self.cpu_workers)
        return gate

    @property
    def limits(self) -> Limits:
        """Submission limits (parcels sent for a check), worded for API clients."""
        return self.settings.submission_limits("api")

    @property
    def layer_limits(self) -> Limits:
        """Plan-layer limits (a department's layer uploaded by an administrator)."""
        return self.settings.layer_limits("api")

    # ---------------------------------------------------------------------------------- layers

    def upload_layer(
        self,
        path: Path,
        kind: str,
        *,
        by: Principal,
        crs: str | None = None,
        encoding: str | None = None,
        layer: str | None = None,
        name: str | None = None,
        replace: bool = False,
        fields: Mapping[str, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Read a department's file into a plan layer and store it (nothing is stored if reading fails).

        ``fields`` names the file's columns for a kind's attribute fields (``{"RJL": "容积率"}``);
        ``resume`` (a job run again after its worker died): a layer of that name already stored from
        this very file was stored by the earlier run, and is returned as it is."""
        self.catalogue[kind]  # unknown kinds fail before the file is read
        # read chunk by chunk into the store: a province-size layer never sits in memory whole
        with open_layer(
            path,
            kind,
            work_crs=self.settings.work_crs,
            catalogue=self.catalogue,
            crs=parse_crs(crs) if crs else None,
            encoding=encoding,
            layer=layer,
            name=name,
            limits=self.layer_limits,
            fields=fields,
        ) as stream:
            if resume and (done := self._stored_from(stream.name, stream.checksum)) is not None:
                return done
            summary = self.stores.layers.save_stream(stream, by.name, replace=replace, progress=progress)
        self.audit.record(
            by,
            "layer.upload",
            "layer",
            str(summary["name"]),
            after={"id": summary["id"], "checksum": summary["checksum"], "kind": kind},
            detail={"replace": replace, "feature_count": summary["feature_count"]},
        )
        return summary

    def _stored_from(self, name: str, checksum: str) -> dict[str, Any] | None:
        try:
            summary = self.stores.layers.summary(name)
        except OneBlueprintError:  # not stored
            return None
        return summary if summary.get("checksum") == checksum else None

    def delete_layer(self, name: str, *, by: Principal) -> None:
        before = self.stores.layers.summary(name)
        self.stores.layers.delete(name)
        self.audit.record(
            by, "layer.delete", "layer", name, before={"id": before["id"], "checksum": before["checksum"]}
        )

    # ------------------------------------------------------------------------------ blueprints

    def build(
        self, *, by: Principal, layer_names: Sequence[str] | None = None, tolerance_m: float | None = None,
        on_saved: Callable[[Connection, str], None] | None = None,
    ) -> dict[str, Any]:
        """Merge stored layers (all, or the named ones) into a new draft version.

        The draft, its audit entry and ``on_saved(conn, version)`` (a build job recording the version it
        made) commit in one transaction: a process killed after it leaves all three, never the draft alone."""
        store = self.stores.layers
        layers = [store.get(n) for n in layer_names] if layer_names else store.load_all()
        tolerance = self.settings.tolerance_m if tolerance_m is None else tolerance_m
        blueprint = build_blueprint(
            layers,
            catalogue=self.catalogue,
            precedence=self.precedence,
            tolerance_m=tolerance,
            version=self.stores.blueprints.next_version(),
            created_by=by.name,
        )
        def record(conn: Connection) -> None:
            AuditLog.append(conn, by, "blueprint.build", "blueprint", blueprint.version,
                            after={"version": blueprint.version, "status": "draft"},
                            detail={"layers": [ref.as_dict() for ref in blueprint.layers]})
            if on_saved is not None:
                on_saved(conn, blueprint.version)

        for _attempt in range(5):
            try:
                summary = self.stores.blueprints.save_draft(blueprint, also=record)
                break
            except BlueprintVersionExistsError:
                # a concurrent build took this number; the merge result does not depend on it
                blueprint.version = self.stores.blueprints.next_version()
        else:
            raise BlueprintVersionExistsError("could not claim a version number; build again")
        return summary

    def publish(self, version: str, *, by: Principal) -> dict[str, Any]:
        """Publish a draft; the same transaction records the event and queues the re-screening."""
        summary = self.stores.blueprints.publish(version, by.name, also=on_publish(version, by))
        self.latest.forget()
        self.audit.record(
            by,
            "blueprint.publish",
            "blueprint",
            version,
            before={"status": "draft"},
            after={"status": "published"},
        )
        job = self.jobs.by_idempotency_key(f"{RESCREEN_KIND}:{version}")
        return {**summary, "rescreen_job_id": job["job_id"] if job else None}

    def blueprint_detail(self, version: str) -> dict[str, Any]:
        """Metadata, summary by kind and the conflict list (geometry via /ogc)."""
        summary = self.stores.blueprints.summary(version)
        conflicts = self.stores.blueprints.conflicts(version)
        rows = conflicts.drop(columns=conflicts.geometry.name).to_dict(orient="records")
        for row in rows:
            row["feature_ids"] = _maybe_json(row.get("feature_ids"))
        return {**summary, "conflicts": rows}

    def resolve_version(self, version: str | None) -> str:
        return version or self.latest.get()

    # ---------------------------------------------------------------------------------- checks

    def screen(
        self,
        parcels: ParcelSet,
        project_type: str,
        version: str | None,
        *,
        by: Principal,
        idempotency_key: str | None = None,
        check_id: str | None = None,
        declared: Mapping[str, Any] | None = None,
    ) -> CheckOutcome:
        """Screen and store; the same Idempotency-Key returns the first stored result unchanged.

        ``check_id`` is given by a durable job (derived from the job id), so a job run again after
        its worker died finds its own stored check instead of screening twice.
        """
        plan = parse_declared(declared)  # a bad declared value is a 422 before anything is screened
        input_hash = self.input_hash(parcels, project_type, version, plan.as_dict())
        replay = self.replay(idempotency_key, input_hash)
        if replay is not None:
            return replay
        if check_id is not None and self.stores.checks.exists(check_id):
            return CheckOutcome(self.stores.checks.get(check_id), check_id, replayed=True)
        self.rules.require_project_type(project_type)
        if parcel_count(parcels) == 0:
            raise NoParcelsError("the submission holds no parcels 未提交地块")
        resolved = self.resolve_version(version)
        screener = self.published.screener(resolved)
        # one id per submission (the engine's content hash would merge identical submissions into one)
        check_id = check_id or f"chk_{uuid.uuid4().hex[:20]}"
        with self.cpu_slots:
            result = screener.screen(parcels, project_type, check_id=check_id, declared=plan,
                                     check_date=self.today())
            text = result_json(result)
        def audit(conn: Any) -> None:  # in the check's own transaction: never a check without its entry
            AuditLog.append(
                conn,
                by,
                "check.create",
                "check",
                str(check_id),
                after={"check_id": check_id, "verdict": result["verdict"], "blueprint_version": resolved},
                detail={"idempotency_key": idempotency_key, "parcels": parcel_count(parcels)},
            )

        stored = self.stores.checks.save(
            check_id,
            text,
            blueprint_version=resolved,
            project_type=project_type,
            verdict=str(result["verdict"]),
            input_hash=input_hash,
            idempotency_key=idempotency_key,
            by=by.name,
            with_insert=audit,
        )
        if stored != text:  # a concurrent request with the same key won the race: its result stands
            return self._replayed(stored, input_hash)
        return CheckOutcome(stored, check_id, replayed=False)

    @staticmethod
    def scoped_key(idempotency_key: str | None, by: Principal) -> str | None:
        """The Idempotency-Key as stored: refused when blank, and prefixed by who sent it, so two callers
        choosing the same key never see each other's results (``<16 hex of the caller>/<key>``)."""
        if idempotency_key is None:
            return None
        if not idempotency_key.strip() or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidRequestError(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters, not blank 幂等键不能为空"
            )
        caller = hashlib.sha256(f"{by.key_id}\0{by.name}".encode()).hexdigest()[:16]
        return f"{caller}/{idempotency_key}"

    def replay(self, idempotency_key: str | None, input_hash: str) -> CheckOutcome | None:
        if idempotency_key is None:
            return None
        stored = self.stores.checks.find_by_key(idempotency_key)
        return None if stored is None else self._replayed(stored, input_hash)

    def _replayed(self, stored: str, input_hash: str) -> CheckOutcome:
        check_id = str(json.loads(stored)["check_id"])
        if self.stores.checks.meta(check_id)["input_hash"] != input_hash:
            raise IdempotencyConflictError(
                "this Idempotency-Key was used for a different submission; use a new key 幂等键已用于其他提交"
            )
        return CheckOutcome(stored, check_id, replayed=True)

    @staticmethod
    def input_hash(parcels: ParcelSet, project_type: str, version: str | None,
                   declared: Mapping[str, Any] | None = None) -> str:
        """What makes two submissions "the same" for idempotency: parcels, project type, version asked
        and the declared planning values."""
        digest = hashlib.sha256()
        for part in (project_type, version or "latest"):
            digest.update(part.encode() + b"\0")
        if declared:
            digest.update(json.dumps(dict(declared), sort_keys=True).encode() + b"\0")
        ids, geoms = ((parcels.ids, parcels.geoms) if isinstance(parcels, ParcelRows)
                      else (parcels.frame["parcel_id"], parcels.frame.geometry))
        for pid, geom in zip(ids, geoms, strict=True):
            digest.update(str(pid).encode() + b"\0" + shapely.to_wkb(geom, output_dimension=2) + b"\0")
        return digest.hexdigest()

    def submit(
        self,
        parcels: ParcelSet,
        project_type: str,
        version: str | None,
        *,
        by: Principal,
        idempotency_key: str | None = None,
        declared: Mapping[str, Any] | None = None,
    ) -> CheckOutcome | dict[str, Any]:
        """Screen now, or queue a background job when the submission is large (returns the job): more
        parcels than ``job_threshold`` or more vertices than ``job_vertex_threshold`` (cost admission)."""
        idempotency_key = self.scoped_key(idempotency_key, by)
        geoms = parcels.geoms if isinstance(parcels, ParcelRows) else parcels.frame.geometry.values
        vertices = int(shapely.get_num_coordinates(geoms).sum())
        if parcel_count(parcels) <= self.job_threshold and vertices <= self.job_vertex_threshold:
            return self.screen(parcels, project_type, version, by=by, idempotency_key=idempotency_key,
                               declared=declared)
        plan = parse_declared(declared).as_dict()
        input_hash = self.input_hash(parcels, project_type, version, plan)
        replay = self.replay(idempotency_key, input_hash)
        if replay is not None:
            return replay
        # validate what can be validated now, so a bad request is a 4xx and not a failed job
        self.rules.require_project_type(project_type)
        self.published.screener(self.resolve_version(version))
        job, new = self.jobs.create(
            "check",
            by=by,
            parcel_count=len(parcels.frame),
            input_hash=input_hash,
            idempotency_key=idempotency_key,
            payload={"project_type": project_type, "version": version, "by": [by.name, by.role],
                     "declared": plan, **parcel_set_meta(parcels)},
            write_input=lambda folder: parcels.frame.to_parquet(folder / "parcels.parquet"),
        )
        if not new and job.get("input_hash", input_hash) != input_hash:
            raise IdempotencyConflictError("this Idempotency-Key was used for a different submission")
        return job

    def _check_job(self, job: dict[str, Any], folder: Path, progress: Callable[[float], None]) -> str:
        """A queued check: the parcels stored with the job, screened under a check id the job fixes."""
        payload = job["payload"]
        frame = gpd.read_parquet(folder / "parcels.parquet")
        parcels = parcel_set_from(frame, payload)
        name, role = payload.get("by") or ["system", "admin"]
        progress(0.05)
        outcome = self.screen(parcels, str(payload["project_type"]), payload.get("version"),
                              by=Principal(str(name), role), idempotency_key=job.get("idempotency_key"),
                              check_id="chk_" + str(job["job_id"])[1:21], declared=payload.get("declared"))
        return outcome.check_id

    # -------------------------------------------------------------------------------- projects

    def create_project(
        self, project: NewProject, parcels: ParcelSet, *, by: Principal, planning: bool = False
    ) -> dict[str, Any]:
        """Pool a project: ``submitted``, or ``planning`` while departments give opinions (策划生成)."""
        self.rules.require_project_type(project.project_type)
        if parcels.frame.empty:
            raise NoParcelsError("a project needs at least one parcel 项目至少需要一个地块")
        checksum = parcels.checksum or self.input_hash(parcels, project.project_type, None)
        return self.projects.create(
            project, parcels.frame, checksum, by=by, status="planning" if planning else "submitted"
        )

    def replace_parcels(self, code: str, parcels: ParcelSet, *, by: Principal) -> dict[str, Any]:
        """New parcels for a pooled project (a re-submission); the earlier set is kept as a revision."""
        if parcels.frame.empty:
            raise NoParcelsError("a project needs at least one parcel 项目至少需要一个地块")
        project = self.projects.get(code)
        checksum = parcels.checksum or self.input_hash(parcels, str(project["project_type"]), None)
        return parcel_history.replace_parcels(self.projects, code, parcels.frame, checksum, by=by)

    def project_parcels(self, code: str, project: dict[str, Any]) -> ParcelSet:
        """A pooled project's stored parcels as a submission (for a project check or a re-screening)."""
        frame = self.projects.parcels(code)[["parcel_id", "name", "geometry"]]
        return ParcelSet(
            frame=frame,
            source=f"project {code}",
            crs_in=str(frame.crs.to_string()),
            checksum=str(project["parcels_checksum"]),
        )

    def screen_project(
        self, code: str, version: str | None, *, by: Principal, idempotency_key: str | None = None,
        declared: Mapping[str, Any] | None = None,
    ) -> CheckOutcome:
        """Screen the project's stored parcels and link the check to the project."""
        idempotency_key = self.scoped_key(idempotency_key, by)
        project = self.projects.get(code)
        if project["status"] in ("cleared", "rejected"):
            # refused before screening, so the 409 leaves no stored check behind (link_check re-checks)
            raise InvalidTransitionError(
                f"project {code} is {project['status']}; it can no longer be screened"
            )
        outcome = self.screen(
            self.project_parcels(code, project), str(project["project_type"]), version, by=by,
            idempotency_key=idempotency_key, declared=declared,
        )
        if not outcome.replayed:
            meta = self.stores.checks.meta(outcome.check_id)
            self.projects.link_check(
                code, outcome.check_id, str(meta["verdict"]), str(meta["blueprint_version"]), by=by
            )
        return outcome

    def change_status(self, code: str, status: str, *, by: Principal, reason: str = "") -> dict[str, Any]:
        if status in ("cleared", "rejected") and by.role not in ("reviewer", "admin"):
            raise PermissionDeniedError(f"only a reviewer or an admin may set a project to {status}")
        if status == "cleared" and self.settings.clear_requires_latest:
            self._require_latest_check(code)
        return self.projects.transition(code, status, by=by, reason=reason)

    def _require_latest_check(self, code: str) -> None:
        """Clearing needs a check against the newest published version (BLUEPRINT_CLEAR_REQUIRES_LATEST)."""
        project = self.projects.get(code)
        if project["status"] != "in_review":
            return  # the lifecycle refuses this change anyway, with its own reason
        latest_check = project["latest_check_id"]
        latest = self.stores.blueprints.latest_published_version()
        screened = next((str(c["blueprint_version"]) for c in self.projects.checks(code)
                         if c["check_id"] == latest_check), None)
        if screened != latest:
            raise StaleCheckError(
                f"project {code} was last screened against {screened or 'no version'}; blueprint {latest} "
                f"is published since — screen it against {latest} before clearing 须按最新版本重新检测"
            )

    def require_in_pool(self, code: str) -> None:
        """库外项目不立项: a code not in the pool gets ``project_not_in_pool``."""
        if not self.projects.exists(code):
            raise ProjectNotInPoolError(f"project {code} is not in the project pool 库外项目不立项")

    def record_review(
        self,
        check_id: str,
        *,
        decided_by: str,
        decided_at: datetime | None,
        decision: str,
        conditions: Sequence[str],
        reasons: str,
        by: Principal,
    ) -> dict[str, Any]:
        self.stores.checks.meta(check_id)  # 404 for an unknown check
        return self.projects.record_review(
            check_id,
            decided_by=decided_by,
            decided_at=decided_at,
            decision=decision,
            conditions=conditions,
            reasons=reasons,
            by=by,
        )

    def project_detail(self, code: str) -> dict[str, Any]:
        project = self.projects.get(code)
        return {
            **project,
            "checks": self.projects.checks(code),
            "reviews": self.projects.reviews(code=code),
            "parcel_revisions": parcel_history.revisions(self.projects, code),
            "opinion_rounds": self.planning.opinions(code)["rounds"],
            "warning": rescreen.warning(self, code),  # 预警: a re-screening changed the verdict
        }

    def location(self, code: str) -> dict[str, Any]:
        """Where a project is: centroid, bbox and geometry in EPSG:4326 (the national locate call)."""
        self.require_in_pool(code)
        frame = self.projects.parcels(code)
        union = shapely.union_all(frame.geometry.values)
        # the centroid is taken in the projected working CRS (planar and in metres), then converted
        centroid = to_output(gpd.GeoSeries([union.centroid], crs=frame.crs)).iloc[0]
        out = to_output(frame)
        west, south, east, north = (float(v) for v in out.total_bounds)
        geometry = shapely.union_all(out.geometry.values)
        return {
            "code": code,
            "crs": "EPSG:4326",
            "centroid": [round(centroid.x, 7), round(centroid.y, 7)],
            "bbox": [round(west, 7), round(south, 7), round(east, 7), round(north, 7)],
            "area_m2": round(float(union.area), 2),
            "geometry": mapping(geometry),
            "parcels": feature_collection(
                out, id_column="parcel_id", properties=("parcel_id", "name", "area_m2")
            ),
        }


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
