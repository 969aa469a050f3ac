"""approval.pool: the project pool — projects, their parcels and linked checks, moved along the lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import geopandas as gpd
import sqlalchemy as sa
from pyproj import CRS
from shapely import wkb
from sqlalchemy.engine import Connection, Engine

from approval import decisions
from approval.audit import AuditLog, Principal, _iso, now, write
from approval.errors import ProjectExistsError, ProjectNotFoundError, ReviewRequiredError
from approval.lifecycle import check_transition, status_after_check
from approval.pool_tables import project_checks, project_parcels, projects
from approval.store import EventLog
from layers.crs import to_output


@dataclass(frozen=True)
class NewProject:
    code: str
    name: str
    project_type: str
    applicant: str
    district: str


class ProjectStore:
    """The project pool (库外项目不立项): projects, their parcels, linked checks and review decisions."""

    def __init__(self, engine: Engine, work_crs: CRS) -> None:
        self.engine = engine
        self.work_crs = work_crs
        self.srid = int(work_crs.to_epsg() or 0)

    # ---- writes

    def create(
        self,
        project: NewProject,
        parcels: gpd.GeoDataFrame,
        checksum: str,
        *,
        by: Principal,
        status: Literal["submitted", "planning"] = "submitted",
    ) -> dict[str, Any]:
        """Insert a project with its parcels (``parcel_id``, optional ``name``, geometry in the work CRS);
        ``planning`` for a project generated through opinion rounds (策划生成) before it is submitted."""
        west, south, east, north = (float(v) for v in to_output(parcels.geometry).total_bounds)
        stamp = now()
        row = {
            **vars(project),
            "status": status,
            "parcel_count": len(parcels),
            "area_m2": round(float(parcels.geometry.area.sum()), 2),
            "parcels_checksum": checksum,
            "min_lon": west,
            "min_lat": south,
            "max_lon": east,
            "max_lat": north,
            "revision": 1,
            "created_by": by.name,
            "created_at": stamp,
            "updated_at": stamp,
        }
        with write(self.engine) as conn:
            if conn.execute(sa.select(projects.c.id).where(projects.c.code == project.code)).first():
                raise ProjectExistsError(f"project {project.code} already exists")
            try:
                project_id = conn.execute(
                    projects.insert().returning(projects.c.id).values(**row)
                ).scalar_one()
            except sa.exc.IntegrityError as exc:  # a concurrent create of the same code got in first
                raise ProjectExistsError(f"project {project.code} already exists") from exc
            names = parcels["name"] if "name" in parcels.columns else [None] * len(parcels)
            self._insert_parcels(conn, project_id, parcels, names)
            AuditLog.append(
                conn,
                by,
                "project.create",
                "project",
                project.code,
                after={"status": status, "parcels_checksum": checksum, "parcel_count": len(parcels)},
            )
            EventLog.append(
                conn, "project.created", "project", project.code,
                {"code": project.code, "name": project.name, "project_type": project.project_type,
                 "district": project.district, "status": status, "parcel_count": len(parcels)},
            )
        return self.get(project.code)

    def _insert_parcels(
        self, conn: Connection, project_id: int, parcels: gpd.GeoDataFrame, names: Any
    ) -> None:
        stmt = sa.text(
            "INSERT INTO project_parcels (project_id, seq, parcel_id, name, area_m2, geom) "
            "VALUES (:project_id, :seq, :parcel_id, :name, :area_m2, "
            "ST_GeomFromWKB(:wkb, :srid))"
        )
        conn.execute(
            stmt,
            [
                {
                    "project_id": project_id,
                    "seq": seq,
                    "parcel_id": str(pid),
                    "name": None if name is None or name != name else str(name),
                    "area_m2": float(geom.area),
                    "wkb": geom.wkb,
                    "srid": self.srid,
                }
                for seq, (pid, name, geom) in enumerate(
                    zip(parcels["parcel_id"], names, parcels.geometry, strict=True)
                )
            ],
        )

    def link_check(
        self,
        code: str,
        check_id: str,
        verdict: str,
        blueprint_version: str,
        *,
        by: Principal,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Attach a check to a project; a submitted project becomes screened.

        ``changes`` comes from a re-screening after a publish: the same transaction then records a
        ``project.rescreened`` event, and ``verdict.changed`` when the verdict moved. Linking a check
        that is linked already changes nothing (a re-run job must not link twice).
        """
        with write(self.engine) as conn:
            row = self._lock(conn, code)
            if conn.execute(
                sa.select(project_checks.c.check_id).where(project_checks.c.check_id == check_id)
            ).first():
                return self.get(code)
            status = status_after_check(code, row["status"])
            conn.execute(
                project_checks.insert().values(
                    project_id=row["id"],
                    check_id=check_id,
                    verdict=verdict,
                    blueprint_version=blueprint_version,
                    parcels_revision=row["parcels_revision"],
                    created_by=by.name,
                    created_at=now(),
                )
            )
            self._update(conn, row, status=status, latest_check_id=check_id, latest_verdict=verdict)
            AuditLog.append(
                conn,
                by,
                "project.check",
                "project",
                code,
                before={"status": row["status"], "latest_check_id": row["latest_check_id"]},
                after={"status": status, "latest_check_id": check_id, "verdict": verdict},
            )
            linked = {"code": code, "check_id": check_id, "verdict": verdict,
                      "blueprint_version": blueprint_version, "status": status}
            EventLog.append(conn, "check.linked", "project", code, linked)
            if status != row["status"]:
                EventLog.append(conn, "project.status", "project", code,
                                {"code": code, "before": row["status"], "after": status})
            if changes is not None:
                before = {"verdict": row["latest_verdict"], "check_id": row["latest_check_id"]}
                EventLog.append(conn, "project.rescreened", "project", code, {**linked, "before": before})
                if row["latest_verdict"] is not None and row["latest_verdict"] != verdict:
                    EventLog.append(conn, "verdict.changed", "project", code, {
                        "code": code, "blueprint_version": blueprint_version, "before": row["latest_verdict"],
                        "after": verdict, "before_check_id": row["latest_check_id"], "check_id": check_id,
                        **changes,
                    })
        return self.get(code)

    def transition(self, code: str, status: str, *, by: Principal, reason: str = "") -> dict[str, Any]:
        """Move a project along its lifecycle; clearing a conflict needs an approving review with reasons."""
        with write(self.engine) as conn:
            row = self._lock(conn, code)
            current = row["status"]
            check_transition(code, current, status)
            if status == "cleared" and row["latest_verdict"] in ("conflict", "review"):
                if not decisions.approving_reasons_given(conn, row["latest_check_id"]):
                    raise ReviewRequiredError(
                        f"project {code}: the latest check {row['latest_check_id']} is "
                        f"'{row['latest_verdict']}'; clearing it needs a recorded joint-review decision "
                        f"(approved) with reasons 联合审查决定及理由"
                    )
            self._update(conn, row, status=status)
            AuditLog.append(
                conn,
                by,
                "project.status",
                "project",
                code,
                before={"status": current},
                after={"status": status},
                detail={"reason": reason} if reason else None,
            )
            EventLog.append(conn, "project.status", "project", code,
                            {"code": code, "before": current, "after": status, "reason": reason})
        return self.get(code)

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
        """Record a joint-review decision against a check (:func:`approval.decisions.record`)."""
        return decisions.record(self.engine, check_id, decided_by=decided_by, decided_at=decided_at,
                                decision=decision, conditions=conditions, reasons=reasons, by=by)

    def _lock(self, conn: Connection, code: str) -> sa.RowMapping:
        # FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock
        row = (
            conn.execute(sa.select(projects).where(projects.c.code == code).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            raise ProjectNotFoundError(f"no project with code {code}")
        return row

    @staticmethod
    def _update(conn: Connection, row: sa.RowMapping, **values: Any) -> None:
        conn.execute(
            projects.update()
            .where(projects.c.id == row["id"])
            .values(revision=row["revision"] + 1, updated_at=now(), **values)
        )

    # ---- reads

    def get(self, code: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(projects).where(projects.c.code == code)).mappings().first()
        if row is None:
            raise ProjectNotFoundError(f"no project with code {code}")
        return _project(row)

    def project_id(self, code: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(projects.c.id).where(projects.c.code == code)).scalar()
        if found is None:
            raise ProjectNotFoundError(f"no project with code {code}")
        return int(found)

    def exists(self, code: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(projects.c.id).where(projects.c.code == code)).first() is not None

    def search(
        self,
        *,
        q: str | None = None,
        code: str | None = None,
        name: str | None = None,
        district: str | None = None,
        status: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Projects matching every given filter (text filters are substring matches), and the total."""
        conds: list[Any] = []
        if q:
            conds.append(
                sa.or_(
                    projects.c.code.contains(q, autoescape=True), projects.c.name.contains(q, autoescape=True)
                )
            )
        if code:
            conds.append(projects.c.code.contains(code, autoescape=True))
        if name:
            conds.append(projects.c.name.contains(name, autoescape=True))
        if district:
            conds.append(projects.c.district.contains(district, autoescape=True))
        if status:
            conds.append(projects.c.status == status)
        if bbox:
            west, south, east, north = bbox
            conds += [
                projects.c.max_lon >= west,
                projects.c.min_lon <= east,
                projects.c.max_lat >= south,
                projects.c.min_lat <= north,
            ]
        where = sa.and_(sa.true(), *conds)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(projects).where(where)).scalar_one()
            rows = (
                conn.execute(
                    sa.select(projects).where(where).order_by(projects.c.code).limit(limit).offset(offset)
                )
                .mappings()
                .all()
            )
        return [_project(r) for r in rows], int(total)

    def parcels(
        self, code: str | None = None, conn: Connection | None = None, *,
        where: Sequence[sa.ColumnElement[Any]] = (), limit: int | None = None, offset: int = 0,
    ) -> gpd.GeoDataFrame:
        """Parcels of one project (or of every project), in the working CRS, in stored order.

        ``conn``: read inside the caller's transaction (which has already found and locked the project).
        ``where`` (conditions on ``projects`` and ``project_parcels``), ``limit``, ``offset``: one page of
        them (an OGC items page reads only its rows).
        """
        query = (
            sa.select(
                projects.c.code,
                project_parcels.c.seq,
                project_parcels.c.parcel_id,
                project_parcels.c.name,
                project_parcels.c.area_m2,
                sa.func.ST_AsBinary(sa.literal_column("project_parcels.geom")).label("wkb"),
            )
            .join(projects, projects.c.id == project_parcels.c.project_id)
            .where(*where)
            .order_by(projects.c.code, project_parcels.c.seq)
            .limit(limit)
            .offset(offset)
        )
        if code is not None:
            if conn is None and not self.exists(code):
                raise ProjectNotFoundError(f"no project with code {code}")
            query = query.where(projects.c.code == code)
        if conn is not None:
            rows = conn.execute(query).mappings().all()
        else:
            with self.engine.connect() as own:
                rows = own.execute(query).mappings().all()
        geoms = [wkb.loads(bytes(r["wkb"])) for r in rows]
        return gpd.GeoDataFrame(
            {
                "project_code": [r["code"] for r in rows],
                "parcel_id": [r["parcel_id"] for r in rows],
                "name": [r["name"] for r in rows],
                "area_m2": [r["area_m2"] for r in rows],
            },
            geometry=gpd.GeoSeries(geoms, crs=self.work_crs),
            crs=self.work_crs,
        )

    def count_parcels(self, where: Sequence[sa.ColumnElement[Any]] = ()) -> int:
        """How many parcels of every project meet ``where`` (as in :meth:`parcels`)."""
        query = (sa.select(sa.func.count()).select_from(project_parcels)
                 .join(projects, projects.c.id == project_parcels.c.project_id).where(*where))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def checks(self, code: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(
                        project_checks.c.check_id,
                        project_checks.c.verdict,
                        project_checks.c.blueprint_version,
                        project_checks.c.parcels_revision,
                        project_checks.c.created_by,
                        project_checks.c.created_at,
                    )
                    .join(projects, projects.c.id == project_checks.c.project_id)
                    .where(projects.c.code == code)
                    .order_by(project_checks.c.created_at)
                )
                .mappings()
                .all()
            )
        return [{**r, "created_at": _iso(r["created_at"])} for r in rows]

    def project_for_check(self, check_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(projects)
                    .join(project_checks, project_checks.c.project_id == projects.c.id)
                    .where(project_checks.c.check_id == check_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else _project(row)

    def review(self, review_id: str) -> dict[str, Any] | None:
        return decisions.get(self.engine, review_id)

    def reviews(self, *, check_id: str | None = None, code: str | None = None) -> list[dict[str, Any]]:
        return decisions.search(self.engine, check_id=check_id, code=code)


def _project(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "code": row["code"],
        "name": row["name"],
        "project_type": row["project_type"],
        "applicant": row["applicant"],
        "district": row["district"],
        "status": row["status"],
        "parcel_count": row["parcel_count"],
        "area_m2": row["area_m2"],
        "parcels_checksum": row["parcels_checksum"],
        "bbox": [row["min_lon"], row["min_lat"], row["max_lon"], row["max_lat"]],
        "latest_check_id": row["latest_check_id"],
        "latest_verdict": row["latest_verdict"],
        "parcels_revision": row["parcels_revision"],
        "created_by": row["created_by"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }
