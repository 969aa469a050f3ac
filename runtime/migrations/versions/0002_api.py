"""0002_api: projects, their parcels and checks, joint reviews, the append-only audit log, API keys, jobs."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0002_api"
down_revision = "0001_core"
branch_labels = None
depends_on = None

DEFAULT_SRID = 4548


def _srid() -> int:
    return int(op.get_context().config.attributes.get("srid", DEFAULT_SRID))


def _stamp(name: str = "created_at", nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("project_type", sa.String(64), nullable=False),
        sa.Column("applicant", sa.String(200), nullable=False),
        sa.Column("district", sa.String(100), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("parcel_count", sa.Integer, nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("parcels_checksum", sa.String(64), nullable=False),
        # bounding box in EPSG:4326, kept beside the geometry so bbox search is plain SQL on both backends
        sa.Column("min_lon", sa.Float, nullable=False),
        sa.Column("min_lat", sa.Float, nullable=False),
        sa.Column("max_lon", sa.Float, nullable=False),
        sa.Column("max_lat", sa.Float, nullable=False),
        sa.Column("latest_check_id", sa.String(64)),
        sa.Column("latest_verdict", sa.String(32)),
        sa.Column("revision", sa.Integer, nullable=False),  # bumped on every change
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        _stamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('submitted', 'screened', 'in_review', 'cleared', 'rejected')",
            name="ck_projects_status",
        ),
        sa.Index("ix_projects_bbox", "min_lon", "max_lon", "min_lat", "max_lat"),
    )
    op.create_table(
        "project_parcels",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("parcel_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("geom", Geometry("GEOMETRY", srid=_srid(), spatial_index=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "seq", name="pk_project_parcels"),
    )
    op.create_table(
        "project_checks",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("check_id", sa.String(64), sa.ForeignKey("checks.check_id"), nullable=False, unique=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("blueprint_version", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        sa.PrimaryKeyConstraint("project_id", "check_id", name="pk_project_checks"),
    )
    op.create_table(
        "reviews",
        sa.Column("review_id", sa.String(64), primary_key=True),
        sa.Column("check_id", sa.String(64), sa.ForeignKey("checks.check_id"), nullable=False, index=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True),
        sa.Column("decided_by", sa.Text, nullable=False),  # the meeting / the people who decided
        _stamp("decided_at"),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("conditions", sa.JSON, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        _stamp(),
        sa.CheckConstraint(
            "decision IN ('approved', 'approved_with_conditions', 'rejected', 'deferred')",
            name="ck_reviews_decision",
        ),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _stamp("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False, index=True),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("before", sa.Text),  # JSON text: ids/status before the change
        sa.Column("after", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Index("ix_audit_subject", "subject_type", "subject_id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),  # public half of the key, not a secret
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),  # sha256(salt + secret), hex
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        _stamp("revoked_at", nullable=True),
        sa.CheckConstraint(
            "role IN ('planner', 'reviewer', 'admin', 'approval_system')", name="ck_api_keys_role"
        ),
    )
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("input_hash", sa.String(128)),
        sa.Column("parcel_count", sa.Integer),
        sa.Column("result_id", sa.String(64)),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_detail", sa.Text),
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        _stamp("updated_at"),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_jobs_status"),
    )
    _make_append_only("audit_log")


def _make_append_only(table: str) -> None:
    """The database itself refuses UPDATE and DELETE on the audit log, not just the store."""
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
    if bind.dialect.name == "sqlite":
        op.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_update"))
        op.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
    else:
        op.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log"))
        op.execute(sa.text("DROP FUNCTION IF EXISTS audit_log_append_only()"))
    for table in ("jobs", "api_keys", "audit_log", "reviews", "project_checks"):
        op.drop_table(table)
    if bind.dialect.name == "sqlite":
        op.execute(sa.text("SELECT DisableSpatialIndex('project_parcels', 'geom')"))
        op.execute(sa.text("DROP TABLE IF EXISTS idx_project_parcels_geom"))
        op.execute(sa.text("SELECT DiscardGeometryColumn('project_parcels', 'geom')"))
    op.drop_table("project_parcels")
    op.drop_table("projects")
