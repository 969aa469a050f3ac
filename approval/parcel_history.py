"""approval.parcel_history: new parcels for a pooled project, the replaced set kept as a revision."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import sqlalchemy as sa

from approval.audit import AuditLog, Principal, _iso, now, write
from approval.errors import InvalidTransitionError
from approval.pool import ProjectStore
from approval.pool_tables import project_parcel_revisions, project_parcels, projects
from approval.store import EventLog
from layers.crs import to_output

# New parcels are a new application drawing: allowed until the joint review has the project
REPLACEABLE = ("planning", "submitted", "screened")


def _feature_collection(frame: gpd.GeoDataFrame) -> str:
    """The parcel set as RFC 7946 GeoJSON text (EPSG:4326), ids and names kept."""
    out = to_output(frame[["parcel_id", "name", "area_m2", "geometry"]])
    return str(out.to_json(drop_id=True, ensure_ascii=False))


def replace_parcels(
    store: ProjectStore, code: str, parcels: gpd.GeoDataFrame, checksum: str, *, by: Principal
) -> dict[str, Any]:
    """Replace a project's parcels; the old set is archived, the project must be screened again.

    The project goes back to ``submitted`` with no latest check, so nothing screened on the old
    parcels can clear it; its earlier checks stay linked (each with the parcel revision it used).
    """
    west, south, east, north = (float(v) for v in to_output(parcels.geometry).total_bounds)
    with write(store.engine) as conn:
        row = store._lock(conn, code)
        if row["status"] not in REPLACEABLE:
            raise InvalidTransitionError(
                f"project {code} is {row['status']}; its parcels can no longer be replaced "
                f"(only while {' or '.join(REPLACEABLE)})"
            )
        # read under the lock: a concurrent replacement cannot slip between this read and the archive
        old = store.parcels(code, conn)
        conn.execute(
            project_parcel_revisions.insert().values(
                project_id=row["id"],
                revision=row["parcels_revision"],
                parcel_count=row["parcel_count"],
                area_m2=row["area_m2"],
                parcels_checksum=row["parcels_checksum"],
                geojson=_feature_collection(old),
                replaced_by=by.name,
                replaced_at=now(),
            )
        )
        conn.execute(project_parcels.delete().where(project_parcels.c.project_id == row["id"]))
        names = parcels["name"] if "name" in parcels.columns else [None] * len(parcels)
        store._insert_parcels(conn, row["id"], parcels, names)
        new_revision = int(row["parcels_revision"]) + 1
        status = "planning" if row["status"] == "planning" else "submitted"
        store._update(
            conn,
            row,
            status=status,
            latest_check_id=None,
            latest_verdict=None,
            parcels_revision=new_revision,
            parcel_count=len(parcels),
            area_m2=round(float(parcels.geometry.area.sum()), 2),
            parcels_checksum=checksum,
            min_lon=west,
            min_lat=south,
            max_lon=east,
            max_lat=north,
        )
        AuditLog.append(
            conn,
            by,
            "project.parcels",
            "project",
            code,
            before={"status": row["status"], "parcels_revision": row["parcels_revision"],
                    "parcels_checksum": row["parcels_checksum"]},
            after={"status": status, "parcels_revision": new_revision, "parcels_checksum": checksum,
                   "parcel_count": len(parcels)},
        )
        EventLog.append(conn, "project.parcels_replaced", "project", code, {
            "code": code, "before": row["status"], "status": status, "parcels_revision": new_revision})
    return store.get(code)


def revisions(store: ProjectStore, code: str, *, geometry: bool = False) -> list[dict[str, Any]]:
    """Earlier parcel sets of a project, oldest first (the GeoJSON only when ``geometry``)."""
    query = (
        sa.select(project_parcel_revisions)
        .join(projects, projects.c.id == project_parcel_revisions.c.project_id)
        .where(projects.c.code == code)
        .order_by(project_parcel_revisions.c.revision)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    out = []
    for r in rows:
        entry: dict[str, Any] = {
            "revision": r["revision"],
            "parcel_count": r["parcel_count"],
            "area_m2": r["area_m2"],
            "parcels_checksum": r["parcels_checksum"],
            "replaced_by": r["replaced_by"],
            "replaced_at": _iso(r["replaced_at"]),
        }
        if geometry:
            entry["parcels"] = json.loads(r["geojson"])
        out.append(entry)
    return out
