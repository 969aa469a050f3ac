"""approval.store: the event feed, opinion rounds and opinions, webhooks and their outbox (SQLAlchemy).

Every write here takes the caller's ``Connection``, so it commits in the same transaction as the change it
belongs to (a project's status, an audit entry). Mirrors ``runtime/migrations/versions/0005_opinions.py``.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from approval.errors import (
    AlreadyAnsweredError,
    RoundClosedError,
    RoundNotFoundError,
    RoundOpenError,
    WebhookNotFoundError,
)
from approval.webhooks import MAX_ATTEMPTS, backoff
from layers.store import as_utc, utcnow

metadata = sa.MetaData()
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(40)),
    sa.Column("type", sa.String(48)),
    sa.Column("subject_type", sa.String(32)),
    sa.Column("subject_id", sa.String(200)),
    sa.Column("payload", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
opinion_rounds = sa.Table(
    "opinion_rounds",
    metadata,
    sa.Column("round_id", sa.String(40), primary_key=True),
    sa.Column("project_id", sa.Integer),
    sa.Column("seq", sa.Integer),
    sa.Column("departments", sa.Text),
    sa.Column("working_days", sa.Integer),
    sa.Column("opened_on", sa.Date),
    sa.Column("due_on", sa.Date),
    sa.Column("status", sa.String(16)),
    sa.Column("outcome", sa.String(16)),
    sa.Column("note", sa.Text),
    sa.Column("opened_by", sa.String(200)),
    sa.Column("opened_at", sa.DateTime(timezone=True)),
    sa.Column("closed_by", sa.String(200)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("close_reason", sa.Text),
)
opinions = sa.Table(
    "opinions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("opinion_id", sa.String(40)),
    sa.Column("round_id", sa.String(40)),
    sa.Column("department", sa.String(48)),
    sa.Column("answer", sa.String(32)),
    sa.Column("conditions", sa.Text),
    sa.Column("reasons", sa.Text),
    sa.Column("answered_by", sa.String(200)),
    sa.Column("answered_at", sa.DateTime(timezone=True)),
)
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("webhook_id", sa.String(40), primary_key=True),
    sa.Column("system", sa.String(200)),
    sa.Column("url", sa.String(2000)),
    sa.Column("secret", sa.String(128)),
    sa.Column("from_event", sa.Integer),
    sa.Column("fanned_upto", sa.Integer),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
)
deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("webhook_id", sa.String(40)),
    sa.Column("event_seq", sa.Integer),
    sa.Column("event_id", sa.String(40)),
    sa.Column("status", sa.String(16)),
    sa.Column("attempts", sa.Integer),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("job_id", sa.String(64)),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)

# Serialises event writers on PostgreSQL until they commit, so ids become visible in id order and a
# reader paging with ``after=<id>`` never skips an event committed late under a smaller id.
EVENT_LOCK_ID = 0x0B1E_E7E7


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()  # type: ignore[union-attr]
    return value.isoformat()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------ events


class EventLog:
    """The append-only event feed linked systems read (``after`` a cursor) or receive by webhook."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def append(
        conn: Connection, type_: str, subject_type: str, subject_id: str, payload: dict[str, Any]
    ) -> str:
        """Write one event inside the caller's transaction; returns its stable ``event_id``."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": EVENT_LOCK_ID})
        event_id = f"evt_{uuid.uuid4().hex}"
        conn.execute(
            events.insert().values(
                event_id=event_id,
                type=type_,
                subject_type=subject_type,
                subject_id=str(subject_id),
                payload=_dumps(payload),
                created_at=utcnow(),
            )
        )
        return event_id

    def after(self, cursor: int, limit: int = 100, *, types: Sequence[str] = ()) -> list[dict[str, Any]]:
        query = sa.select(events).where(events.c.id > cursor).order_by(events.c.id).limit(limit)
        if types:
            query = query.where(events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            return [event_body(r) for r in conn.execute(query).mappings().all()]

    def last_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one())

    def for_subject(
        self, subject_type: str, subject_id: str, *, types: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        query = (
            sa.select(events)
            .where(events.c.subject_type == subject_type, events.c.subject_id == subject_id)
            .order_by(events.c.id)
        )
        if types:
            query = query.where(events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            return [event_body(r) for r in conn.execute(query).mappings().all()]


def event_body(row: sa.RowMapping) -> dict[str, Any]:
    """An event as the feed and webhooks carry it (``seq`` is the cursor, ``event_id`` the dedupe key)."""
    return {
        "seq": row["id"],
        "event_id": row["event_id"],
        "type": row["type"],
        "subject": {"type": row["subject_type"], "id": row["subject_id"]},
        "payload": json.loads(row["payload"]),
        "created_at": _iso(row["created_at"]),
    }


# ---------------------------------------------------------------------------------- opinion rounds


class RoundStore:
    """Opinion rounds of projects: opened, answered department by department, closed once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def open(
        conn: Connection,
        project_id: int,
        departments: Sequence[str],
        *,
        working_days: int,
        opened_on: date,
        due_on: date,
        note: str,
        by: str,
    ) -> str:
        """A new open round (refused while another round of the project is open)."""
        rows = conn.execute(
            sa.select(opinion_rounds.c.seq, opinion_rounds.c.status).where(
                opinion_rounds.c.project_id == project_id
            )
        ).all()
        if any(status == "open" for _seq, status in rows):
            raise RoundOpenError("this project already has an open opinion round 已有进行中的意见征询")
        round_id = f"rnd_{uuid.uuid4().hex[:20]}"
        conn.execute(
            opinion_rounds.insert().values(
                round_id=round_id,
                project_id=project_id,
                seq=max((s for s, _ in rows), default=0) + 1,
                departments=_dumps(list(departments)),
                working_days=working_days,
                opened_on=opened_on,
                due_on=due_on,
                status="open",
                note=note,
                opened_by=by,
                opened_at=utcnow(),
            )
        )
        return round_id

    @staticmethod
    def lock(conn: Connection, round_id: str) -> dict[str, Any]:
        row = (
            conn.execute(
                sa.select(opinion_rounds).where(opinion_rounds.c.round_id == round_id).with_for_update()
            )
            .mappings()
            .first()
        )
        if row is None:
            raise RoundNotFoundError(f"no opinion round {round_id} 意见征询不存在")
        return _round(row)

    @staticmethod
    def answer(
        conn: Connection,
        round_: dict[str, Any],
        department: str,
        answer: str,
        *,
        conditions: Sequence[str],
        reasons: str,
        by: str,
    ) -> str:
        """Append one department's opinion (never edited: a second answer is refused)."""
        if round_["status"] != "open":
            raise RoundClosedError(f"opinion round {round_['round_id']} is closed 意见征询已办结")
        taken = conn.execute(
            sa.select(opinions.c.opinion_id).where(
                opinions.c.round_id == round_["round_id"], opinions.c.department == department
            )
        ).first()
        if taken is not None:
            raise AlreadyAnsweredError(
                f"{department} has answered round {round_['round_id']} already; opinions are never edited "
                "该部门已答复，意见不可修改"
            )
        opinion_id = f"op_{uuid.uuid4().hex[:20]}"
        try:
            with conn.begin_nested():
                conn.execute(
                    opinions.insert().values(
                        opinion_id=opinion_id,
                        round_id=round_["round_id"],
                        department=department,
                        answer=answer,
                        conditions=_dumps(list(conditions)),
                        reasons=reasons,
                        answered_by=by,
                        answered_at=utcnow(),
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise AlreadyAnsweredError(
                f"{department} has answered round {round_['round_id']} already"
            ) from exc
        return opinion_id

    @staticmethod
    def close(conn: Connection, round_id: str, outcome: str, *, by: str, reason: str) -> None:
        done = conn.execute(
            opinion_rounds.update()
            .where(
                opinion_rounds.c.round_id == round_id,
                opinion_rounds.c.status == "open",
            )
            .values(status="closed", outcome=outcome, closed_by=by, closed_at=utcnow(), close_reason=reason)
        ).rowcount
        if done != 1:
            raise RoundClosedError(f"opinion round {round_id} is closed 意见征询已办结")

    def rounds(self, project_id: int) -> list[dict[str, Any]]:
        """Every round of a project with its opinions, oldest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(opinion_rounds)
                    .where(opinion_rounds.c.project_id == project_id)
                    .order_by(opinion_rounds.c.seq)
                )
                .mappings()
                .all()
            )
            found = [_round(r) for r in rows]
            ids = [r["round_id"] for r in found]
            answers = (
                conn.execute(sa.select(opinions).where(opinions.c.round_id.in_(ids)).order_by(opinions.c.id))
                .mappings()
                .all()
                if ids
                else []
            )
        by_round: dict[str, list[dict[str, Any]]] = {}
        for a in answers:
            by_round.setdefault(a["round_id"], []).append(_opinion(a))
        return [{**r, "opinions": by_round.get(r["round_id"], [])} for r in found]

    def get(self, round_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(opinion_rounds).where(opinion_rounds.c.round_id == round_id))
                .mappings()
                .first()
            )
            if row is None:
                raise RoundNotFoundError(f"no opinion round {round_id} 意见征询不存在")
            answers = (
                conn.execute(
                    sa.select(opinions).where(opinions.c.round_id == round_id).order_by(opinions.c.id)
                )
                .mappings()
                .all()
            )
        return {**_round(row), "opinions": [_opinion(a) for a in answers]}

    @staticmethod
    def answers_in(conn: Connection, round_id: str) -> dict[str, str]:
        rows = conn.execute(
            sa.select(opinions.c.department, opinions.c.answer).where(opinions.c.round_id == round_id)
        ).all()
        return {str(d): str(a) for d, a in rows}


def _round(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "round_id": row["round_id"],
        "project_id": row["project_id"],
        "seq": row["seq"],
        "departments": json.loads(row["departments"]),
        "working_days": row["working_days"],
        "opened_on": _iso(row["opened_on"]),
        "due_on": _iso(row["due_on"]),
        "status": row["status"],
        "outcome": row["outcome"],
        "note": row["note"],
        "opened_by": row["opened_by"],
        "opened_at": _iso(row["opened_at"]),
        "closed_by": row["closed_by"],
        "closed_at": _iso(row["closed_at"]),
        "close_reason": row["close_reason"],
    }


def _opinion(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "opinion_id": row["opinion_id"],
        "department": row["department"],
        "answer": row["answer"],
        "conditions": json.loads(row["conditions"]),
        "reasons": row["reasons"],
        "answered_by": row["answered_by"],
        "answered_at": _iso(row["answered_at"]),
    }


# -------------------------------------------------------------------------------- webhooks, outbox


class WebhookStore:
    """Registered webhook targets and the outbox of deliveries (one row per target × event)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, conn: Connection, system: str, url: str, *, by: str, from_event: int) -> dict[str, Any]:
        """A target receiving every event after ``from_event``; the signing secret is returned once."""
        webhook_id, secret = f"wh_{uuid.uuid4().hex[:16]}", secrets.token_urlsafe(32)
        conn.execute(
            webhooks.insert().values(
                webhook_id=webhook_id,
                system=system,
                url=url,
                secret=secret,
                from_event=from_event,
                fanned_upto=from_event,
                created_by=by,
                created_at=utcnow(),
            )
        )
        return {
            "webhook_id": webhook_id,
            "system": system,
            "url": url,
            "secret": secret,
            "from_event": from_event,
        }

    @staticmethod
    def disable(conn: Connection, webhook_id: str) -> None:
        done = conn.execute(
            webhooks.update()
            .where(webhooks.c.webhook_id == webhook_id, webhooks.c.disabled_at.is_(None))
            .values(disabled_at=utcnow())
        ).rowcount
        if done != 1:
            raise WebhookNotFoundError(f"no active webhook {webhook_id}")

    def all(self) -> list[dict[str, Any]]:
        cols = [
            webhooks.c[c]
            for c in ("webhook_id", "system", "url", "from_event", "created_by", "created_at", "disabled_at")
        ]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols).order_by(webhooks.c.created_at)).mappings().all()
            counts = conn.execute(
                sa.select(deliveries.c.webhook_id, deliveries.c.status, sa.func.count()).group_by(
                    deliveries.c.webhook_id, deliveries.c.status
                )
            ).all()
        tally: dict[str, dict[str, int]] = {}
        for wid, status, n in counts:
            tally.setdefault(str(wid), {})[str(status)] = int(n)
        return [
            {
                **r,
                "created_at": _iso(r["created_at"]),
                "disabled_at": _iso(r["disabled_at"]),
                "deliveries": tally.get(r["webhook_id"], {}),
            }
            for r in rows
        ]

    def fan_out(self, conn: Connection) -> int:
        """Outbox rows for events newer than each active target's mark; returns how many were added."""
        added = 0
        targets = conn.execute(
            sa.select(webhooks.c.webhook_id, webhooks.c.fanned_upto)
            .where(webhooks.c.disabled_at.is_(None))
            .with_for_update()
        ).all()
        for webhook_id, upto in targets:
            new = conn.execute(
                sa.select(events.c.id, events.c.event_id)
                .where(events.c.id > upto)
                .order_by(events.c.id)
                .limit(1000)
            ).all()
            if not new:
                continue
            conn.execute(
                deliveries.insert(),
                [
                    {
                        "webhook_id": webhook_id,
                        "event_seq": seq,
                        "event_id": eid,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": utcnow(),
                    }
                    for seq, eid in new
                ],
            )
            conn.execute(
                webhooks.update().where(webhooks.c.webhook_id == webhook_id).values(fanned_upto=new[-1][0])
            )
            added += len(new)
        return added

    @staticmethod
    def has_work(conn: Connection) -> bool:
        """Whether a sweep would do anything: an active target behind the feed, or a due attempt."""
        behind = conn.execute(
            sa.select(webhooks.c.webhook_id)
            .where(
                webhooks.c.disabled_at.is_(None),
                webhooks.c.fanned_upto
                < sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)).scalar_subquery(),
            )
            .limit(1)
        ).first()
        if behind is not None:
            return True
        due = conn.execute(
            sa.select(deliveries.c.event_seq)
            .join(webhooks, webhooks.c.webhook_id == deliveries.c.webhook_id)
            .where(_due(), webhooks.c.disabled_at.is_(None))
            .limit(1)
        ).first()
        return due is not None

    @staticmethod
    def due(conn: Connection, limit: int = 100) -> list[tuple[str, int, int]]:
        """Pending deliveries whose next attempt is due: (webhook_id, event_seq, attempts)."""
        rows = conn.execute(
            sa.select(deliveries.c.webhook_id, deliveries.c.event_seq, deliveries.c.attempts)
            .join(webhooks, webhooks.c.webhook_id == deliveries.c.webhook_id)
            .where(_due(), webhooks.c.disabled_at.is_(None))
            .order_by(deliveries.c.event_seq)
            .limit(limit)
        ).all()
        return [(str(w), int(s), int(a)) for w, s, a in rows]

    @staticmethod
    def mark_queued(conn: Connection, webhook_id: str, event_seq: int, job_id: str) -> None:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.webhook_id == webhook_id, deliveries.c.event_seq == event_seq)
            .values(job_id=job_id)
        )

    def target(
        self, webhook_id: str, event_seq: int
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The webhook, the outbox row and the event of one delivery."""
        with self.engine.connect() as conn:
            hook = (
                conn.execute(sa.select(webhooks).where(webhooks.c.webhook_id == webhook_id))
                .mappings()
                .first()
            )
            row = (
                conn.execute(
                    sa.select(deliveries).where(
                        deliveries.c.webhook_id == webhook_id, deliveries.c.event_seq == event_seq
                    )
                )
                .mappings()
                .first()
            )
            event = conn.execute(sa.select(events).where(events.c.id == event_seq)).mappings().first()
        if hook is None or row is None or event is None:
            raise WebhookNotFoundError(f"no delivery of event {event_seq} to webhook {webhook_id}")
        return dict(hook), dict(row), event_body(event)

    @staticmethod
    def record_attempt(
        conn: Connection,
        webhook_id: str,
        event_seq: int,
        *,
        attempts: int,
        ok: bool,
        status: int | None,
        error: str | None,
    ) -> str:
        """Delivered, failed for good after MAX_ATTEMPTS, or pending again after a backoff."""
        state = "delivered" if ok else ("failed" if attempts >= MAX_ATTEMPTS else "pending")
        conn.execute(
            deliveries.update()
            .where(
                deliveries.c.webhook_id == webhook_id,
                deliveries.c.event_seq == event_seq,
                deliveries.c.status == "pending",
            )
            .values(
                status=state,
                attempts=attempts,
                last_status=status,
                last_error=error,
                job_id=None,
                next_attempt_at=utcnow() + backoff(attempts),
                delivered_at=utcnow() if ok else None,
            )
        )
        return state


def _due() -> sa.ColumnElement[bool]:
    """An outbox row waiting for its next attempt, with no job queued for it yet."""
    return sa.and_(
        deliveries.c.status == "pending",
        deliveries.c.job_id.is_(None),
        deliveries.c.next_attempt_at <= utcnow(),
    )
