"""0005_opinions: the planning stage, department keys, opinion rounds, the event feed and webhook outbox."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_opinions"
down_revision = "0004_durable_jobs"
branch_labels = None
depends_on = None

OLD_STATUSES = "'submitted', 'screened', 'in_review', 'cleared', 'rejected'"
NEW_STATUSES = "'planning', " + OLD_STATUSES
OLD_ROLES = "'planner', 'reviewer', 'admin', 'approval_system'"
NEW_ROLES = OLD_ROLES + ", 'department'"
APPEND_ONLY = ("events", "opinions")


def _stamp(name: str = "created_at", nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    _replace_check(
        "projects", "ck_projects_status", f"status IN ({OLD_STATUSES})", f"status IN ({NEW_STATUSES})"
    )
    _replace_check("api_keys", "ck_api_keys_role", f"role IN ({OLD_ROLES})", f"role IN ({NEW_ROLES})")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("department", sa.String(48)))  # a department key answers for this one
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # the feed's cursor
        sa.Column("event_id", sa.String(40), nullable=False, unique=True),  # receivers de-duplicate on it
        sa.Column("type", sa.String(48), nullable=False, index=True),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),  # JSON
        _stamp(),
        sa.Index("ix_events_subject", "subject_type", "subject_id"),
    )
    op.create_table(
        "opinion_rounds",
        sa.Column("round_id", sa.String(40), primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("seq", sa.Integer, nullable=False),  # 1, 2 … per project
        sa.Column("departments", sa.Text, nullable=False),  # JSON list of department keys
        sa.Column("working_days", sa.Integer, nullable=False),
        sa.Column("opened_on", sa.Date, nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        _stamp("opened_at"),
        sa.Column("closed_by", sa.String(200)),
        _stamp("closed_at", nullable=True),
        sa.Column("close_reason", sa.Text),
        sa.UniqueConstraint("project_id", "seq", name="uq_opinion_rounds_seq"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_opinion_rounds_status"),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('submitted', 'returned')", name="ck_opinion_rounds_outcome"
        ),
    )
    op.create_table(
        "opinions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("opinion_id", sa.String(40), nullable=False, unique=True),
        sa.Column("round_id", sa.String(40), sa.ForeignKey("opinion_rounds.round_id"), nullable=False),
        sa.Column("department", sa.String(48), nullable=False),
        sa.Column("answer", sa.String(32), nullable=False),
        sa.Column("conditions", sa.Text, nullable=False),  # JSON list
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("answered_by", sa.String(200), nullable=False),
        _stamp("answered_at"),
        sa.UniqueConstraint("round_id", "department", name="uq_opinions_department"),
        sa.CheckConstraint(
            "answer IN ('agree', 'agree_with_conditions', 'disagree', 'no_opinion')",
            name="ck_opinions_answer",
        ),
    )
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String(40), primary_key=True),
        sa.Column("system", sa.String(200), nullable=False),  # the linked system's name
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),  # HMAC key: needed in clear to sign
        sa.Column("from_event", sa.Integer, nullable=False),  # events after this id are delivered
        sa.Column("fanned_upto", sa.Integer, nullable=False),  # outbox rows exist up to this event id
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        _stamp("disabled_at", nullable=True),
    )
    op.create_table(
        "webhook_deliveries",  # the outbox: one row per webhook × event, until delivered or given up
        sa.Column("webhook_id", sa.String(40), sa.ForeignKey("webhooks.webhook_id"), nullable=False),
        sa.Column("event_seq", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _stamp("next_attempt_at"),
        sa.Column("job_id", sa.String(64)),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        _stamp("delivered_at", nullable=True),
        sa.PrimaryKeyConstraint("webhook_id", "event_seq", name="pk_webhook_deliveries"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"
        ),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )
    for table in APPEND_ONLY:
        _make_append_only(table)


def _replace_check(table: str, name: str, old: str, new: str) -> None:
    """Widen a CHECK constraint.

    PostgreSQL: drop and add. SQLite cannot alter a constraint, and rebuilding ``projects`` (what
    batch mode does) would cascade-delete every parcel under ``PRAGMA foreign_keys=ON``, which cannot be
    switched off inside the migration's transaction; a CHECK lives only in the schema text, so SQLite's
    documented ``writable_schema`` edit changes that text (the on-disk format is untouched).
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(name, table, type_="check")
        op.create_check_constraint(name, table, new)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    changed = bind.execute(
        sa.text("UPDATE sqlite_master SET sql = replace(sql, :old, :new) WHERE type = 'table' AND name = :t"),
        {"old": old, "new": new, "t": table},
    ).rowcount
    bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema=OFF")
    if changed != 1:
        raise RuntimeError(f"could not widen {name} on {table}")


def _make_append_only(table: str) -> None:
    """The database itself refuses UPDATE and DELETE (as 0002 does for the audit log)."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                sa.text(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
            )
        return
    op.execute(
        sa.text(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
    )
    op.execute(
        sa.text(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )
    )


def downgrade() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "sqlite":
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        else:
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
            op.execute(sa.text(f"DROP FUNCTION IF EXISTS {table}_append_only()"))
    for table in ("webhook_deliveries", "webhooks", "opinions", "opinion_rounds", "events"):
        op.drop_table(table)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("department")
    _replace_check("api_keys", "ck_api_keys_role", f"role IN ({NEW_ROLES})", f"role IN ({OLD_ROLES})")
    _replace_check(
        "projects", "ck_projects_status", f"status IN ({NEW_STATUSES})", f"status IN ({OLD_STATUSES})"
    )
