"""runtime.rescreen: the ``rescreen`` job (projects in flight screened against a new version) and 预警."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from approval.audit import AuditLog, Principal, write
from approval.errors import NoWarningError
from approval.pool_tables import projects
from approval.rescreen import IN_FLIGHT, RESCREENER, kinds_changed, version_number
from approval.store import EventLog

if TYPE_CHECKING:
    from runtime.services import Services


def in_flight(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(projects.c.code).where(projects.c.status.in_(IN_FLIGHT)).order_by(projects.c.code)
        ).scalars()
        return [str(code) for code in rows]


def run(services: Services, job: dict[str, Any], _folder: Path, progress: Callable[[float], None]) -> str:
    """The job: each project in flight screened once against ``version``; a re-run skips what is done."""
    version = str(job["payload"]["version"])
    # loaded first, so the version's Screener file (runtime.screener_files) is in the data dir before
    # the first check reaches a new worker process
    services.published.screener(version)
    codes = in_flight(services)
    for i, code in enumerate(codes):
        rescreen_project(services, code, version, str(job["job_id"]))
        progress((i + 1) / len(codes))
    return version


def rescreen_project(services: Services, code: str, version: str, job_id: str) -> str | None:
    """Screen one project against ``version`` and link the check (with what changed); ``None`` if skipped."""
    project = services.projects.get(code)
    if project["status"] not in IN_FLIGHT:
        return None
    revision = project["parcels_revision"]
    checks = services.projects.checks(code)
    if checks and version_number(checks[-1]["blueprint_version"]) > version_number(version):
        return None  # already screened against a newer version (a later publish overtook this job)
    if any(c["blueprint_version"] == version and c["parcels_revision"] == revision for c in checks):
        return None  # screened against this version already (by this job before a restart, or by hand)
    # the check id follows from the job, project and parcel set: a re-run finds its stored check
    check_id = "chk_rs_" + hashlib.sha256(f"{job_id}:{code}:{revision}".encode()).hexdigest()[:24]
    before = project["latest_check_id"]
    old = json.loads(services.stores.checks.get(before)) if before else None
    # the planning values the project declared on its last check are held against the new version too
    outcome = services.screen(
        services.project_parcels(code, project), str(project["project_type"]), version, by=RESCREENER,
        check_id=check_id, declared=(old or {}).get("declared"),
    )
    new = json.loads(outcome.text)
    services.projects.link_check(
        code,
        check_id,
        str(new["verdict"]),
        version,
        by=RESCREENER,
        changes={"kinds_changed": kinds_changed(old, new)},
    )
    return check_id


def warning(services: Services, code: str) -> dict[str, Any] | None:
    """The 预警 a changed verdict raises: the newest ``verdict.changed`` not yet acknowledged, or ``None``."""
    found = services.outbox.events.for_subject(
        "project", code, types=("verdict.changed", "warning.acknowledged")
    )
    if not found or found[-1]["type"] != "verdict.changed":
        return None
    last = found[-1]
    return {
        "seq": last["seq"],
        "event_id": last["event_id"],
        "created_at": last["created_at"],
        **last["payload"],
    }


def acknowledge(services: Services, code: str, *, by: Principal, note: str = "") -> dict[str, Any]:
    """A planner has seen the warning: recorded in the audit log and the feed; the warning goes."""
    current = warning(services, code)
    if current is None:
        raise NoWarningError(f"project {code} has no open warning 该项目没有待确认的预警")
    with write(services.engine) as conn:
        services.projects._lock(conn, code)
        body = {"code": code, "acknowledged_seq": current["seq"], "note": note}
        AuditLog.append(conn, by, "project.warning_ack", "project", code, after=body)
        EventLog.append(conn, "warning.acknowledged", "project", code, body)
    return services.project_detail(code)
