"""approval.rescreen: what a publish queues (re-screening, tiles), the projects in flight, what changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from approval.audit import Principal
from approval.jobs import JobStore
from approval.pool_tables import projects
from approval.store import EventLog

KIND = "rescreen"
TILES_KIND = "tiles"
# Projects still on their way: a submitted one has its parcels (every pooled project does), planning ones
# are screened when they are submitted, final ones (cleared, rejected) keep the check they were decided on.
IN_FLIGHT = ("submitted", "screened", "in_review")
RESCREENER = Principal("rescreen", "admin")


def on_publish(version: str, by: Principal) -> Callable[[Connection], None]:
    """What a publish commits with: the ``blueprint.published`` event and the queued re-screening."""

    def also(conn: Connection) -> None:
        # read in the publish transaction: a project pooled after it commits is screened on this version
        waiting = conn.execute(
            sa.select(sa.func.count()).select_from(projects).where(projects.c.status.in_(IN_FLIGHT))
        ).scalar_one()
        job_id = None
        if waiting:
            job_id = JobStore.enqueue(
                conn, KIND, by=by, idempotency_key=f"{KIND}:{version}", payload={"version": version}
            )
        # the map's vector-tile archive of the version, built by a worker that has the viewer
        JobStore.enqueue(conn, TILES_KIND, by=by, idempotency_key=f"{TILES_KIND}:{version}",
                         payload={"version": version})
        EventLog.append(
            conn,
            "blueprint.published",
            "blueprint",
            version,
            {"version": version, "published_by": by.name, "rescreen_job_id": job_id, "in_flight": waiting},
        )

    return also


def kind_rules(result: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Per control kind, the strictest rule it triggers in a result: kind → (rule, Chinese name)."""
    order = ("allowed", "conditional", "forbidden")
    found: dict[str, tuple[str, str]] = {}
    for parcel in (result or {}).get("parcels", []):
        for hit in parcel.get("conflicts", []):
            if hit.get("below_tolerance"):
                continue
            kind, rule = str(hit["kind"]), str(hit["rule"])
            held = found.get(kind)
            if held is None or order.index(rule) > order.index(held[0]):
                found[kind] = (rule, str(hit.get("name_zh", kind)))
    return found


def kinds_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """The control kinds whose rule differs between two results (appeared, gone or changed)."""
    before, after = kind_rules(old), kind_rules(new)
    out = []
    for kind in sorted(set(before) | set(after)):
        was, now = before.get(kind), after.get(kind)
        if (was and was[0]) != (now and now[0]):
            name = (now or was or ("", kind))[1]
            out.append({"kind": kind, "name_zh": name, "before": was and was[0], "after": now and now[0]})
    return out


def version_number(version: str) -> int:
    digits = "".join(ch for ch in version if ch.isdigit())
    return int(digits) if digits else 0
