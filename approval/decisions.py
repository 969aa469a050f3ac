"""approval.decisions: joint-review decisions (联合审查决定) recorded against a check, and read back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from approval.audit import AuditLog, Principal, _iso, now, write
from approval.lifecycle import APPROVING
from approval.pool_tables import project_checks, projects, reviews
from approval.store import EventLog


def record(
    engine: Engine,
    check_id: str,
    *,
    decided_by: str,
    decided_at: datetime | None,
    decision: str,
    conditions: Sequence[str],
    reasons: str,
    by: Principal,
) -> dict[str, Any]:
    """Record a joint-review decision against a check (and its project, if the check has one)."""
    review_id = f"R{uuid.uuid4().hex[:20]}"
    if decided_at is not None and decided_at.tzinfo is not None:
        decided_at = decided_at.astimezone(UTC)  # SQLite stores no offset: keep the instant, in UTC
    with write(engine) as conn:
        project_id = conn.execute(
            sa.select(project_checks.c.project_id).where(project_checks.c.check_id == check_id)
        ).scalar()
        conn.execute(
            reviews.insert().values(
                review_id=review_id,
                check_id=check_id,
                project_id=project_id,
                decided_by=decided_by,
                decided_at=decided_at or now(),
                decision=decision,
                conditions=list(conditions),
                reasons=reasons,
                recorded_by=by.name,
                created_at=now(),
            )
        )
        AuditLog.append(
            conn,
            by,
            "review.record",
            "check",
            check_id,
            after={"review_id": review_id, "decision": decision},
        )
        code = conn.execute(sa.select(projects.c.code).where(projects.c.id == project_id)).scalar()
        EventLog.append(conn, "review.recorded", "project" if code else "check", code or check_id, {
            "review_id": review_id, "check_id": check_id, "code": code, "decision": decision,
            "conditions": list(conditions), "reasons": reasons, "decided_by": decided_by,
        })
    review = get(engine, review_id)
    assert review is not None
    return review


def get(engine: Engine, review_id: str) -> dict[str, Any] | None:
    """One recorded decision, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(reviews).where(reviews.c.review_id == review_id)).mappings().first()
    return None if row is None else _review(row)


def search(engine: Engine, *, check_id: str | None = None, code: str | None = None) -> list[dict[str, Any]]:
    """The decisions recorded against a check or a project's checks (all without filters), oldest first."""
    query = sa.select(reviews).order_by(reviews.c.decided_at, reviews.c.created_at)
    if check_id is not None:
        query = query.where(reviews.c.check_id == check_id)
    if code is not None:
        query = query.join(projects, projects.c.id == reviews.c.project_id).where(projects.c.code == code)
    with engine.connect() as conn:
        return [_review(r) for r in conn.execute(query).mappings().all()]


def approving_reasons_given(conn: Connection, check_id: str) -> bool:
    """Whether an approving decision with reasons is recorded against ``check_id`` (what clearing a
    project whose latest check is a conflict or needs review asks for)."""
    reasons = conn.execute(
        sa.select(reviews.c.reasons).where(
            reviews.c.check_id == check_id,
            reviews.c.decision.in_(APPROVING),
            sa.func.length(sa.func.trim(reviews.c.reasons)) > 0,
        )
    ).scalars()
    # SQL trim() strips spaces only: newlines, tabs or full-width spaces are no reasons either
    return any((text or "").strip() for text in reasons)


def _review(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "review_id": row["review_id"],
        "check_id": row["check_id"],
        "decided_by": row["decided_by"],
        "decided_at": _iso(row["decided_at"]),
        "decision": row["decision"],
        "conditions": list(row["conditions"] or []),
        "reasons": row["reasons"],
        "recorded_by": row["recorded_by"],
        "recorded_at": _iso(row["created_at"]),
    }
