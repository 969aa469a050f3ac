"""0001_core: layers, layer features, blueprints, pieces, conflicts and check results."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

DEFAULT_SRID = 4548
GEOMETRY_TABLES = ("layer_features", "pieces", "conflicts")


def _geom() -> sa.Column:
    """A spatially indexed geometry column in the working CRS chosen by runtime.db.migrate."""
    srid = int(op.get_context().config.attributes.get("srid", DEFAULT_SRID))
    return sa.Column("geom", Geometry("GEOMETRY", srid=srid, spatial_index=True), nullable=False)


def _stamp() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "layers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(64), nullable=False, index=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("crs_in", sa.Text, nullable=False),
        sa.Column("crs_out", sa.Text, nullable=False),
        sa.Column("encoding", sa.String(32)),
        sa.Column("feature_count", sa.Integer, nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("repairs", sa.JSON, nullable=False),
        sa.Column("notes", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),  # PlanLayer.meta plus the attribute columns and dtypes
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        sa.CheckConstraint("status IN ('draft', 'used')", name="ck_layers_status"),
    )
    op.create_table(
        "layer_features",
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),  # row order of the source frame
        sa.Column("feature_id", sa.Text, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        _geom(),
        sa.PrimaryKeyConstraint("layer_id", "seq", name="pk_layer_features"),
        sa.Index("ix_layer_features_feature", "layer_id", "feature_id"),
    )
    op.create_table(
        "blueprints",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, unique=True),  # numeric order: v10 after v9
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("crs", sa.Text, nullable=False),
        sa.Column("precedence", sa.JSON, nullable=False),
        sa.Column("tolerance_m", sa.Float, nullable=False),
        sa.Column("layers", sa.JSON, nullable=False),  # LayerRef dicts with checksums
        sa.Column("absorbed", sa.JSON, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
        sa.Column("published_by", sa.String(200)),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('draft', 'published')", name="ck_blueprints_status"),
    )
    op.create_table(
        "pieces",
        sa.Column(
            "version", sa.String(32), sa.ForeignKey("blueprints.version", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("piece_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("kinds", sa.Text, nullable=False),  # JSON text kept verbatim (column contract)
        sa.Column("covered_by", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        _geom(),
        sa.PrimaryKeyConstraint("version", "piece_id", name="pk_pieces"),
        sa.Index("ix_pieces_version_kind", "version", "kind"),
    )
    op.create_table(
        "conflicts",
        sa.Column(
            "version", sa.String(32), sa.ForeignKey("blueprints.version", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("conflict_id", sa.String(32), nullable=False),
        sa.Column("kind_a", sa.String(64), nullable=False),
        sa.Column("kind_b", sa.String(64), nullable=False),
        sa.Column("layer_a", sa.String(200), nullable=False),
        sa.Column("layer_b", sa.String(200), nullable=False),
        sa.Column("feature_ids", sa.Text, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("resolution", sa.Text, nullable=False),
        sa.Column("winner", sa.String(64), nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        _geom(),
        sa.PrimaryKeyConstraint("version", "conflict_id", name="pk_conflicts"),
    )
    op.create_table(
        "checks",
        sa.Column("check_id", sa.String(64), primary_key=True),
        sa.Column("blueprint_version", sa.String(32), nullable=False, index=True),
        sa.Column("project_type", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("result_json", sa.Text, nullable=False),  # exactly the text returned, never re-encoded
        sa.Column("input_hash", sa.String(128), nullable=False, index=True),
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        _stamp(),
    )
    _immutability_triggers()


# Published blueprints and stored check results are write-once. The stores refuse with domain errors;
# these triggers make the database refuse too, whoever writes to it.
SQLITE_TRIGGERS = {
    "blueprints_published_frozen": """
        CREATE TRIGGER blueprints_published_frozen_{op} BEFORE {OP} ON blueprints
        WHEN OLD.status = 'published'
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: a published blueprint cannot change'); END""",
    "pieces": """
        CREATE TRIGGER pieces_published_frozen_{op} BEFORE {OP} ON pieces
        WHEN (SELECT status FROM blueprints WHERE version = {row}.version) = 'published'
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: pieces of a published blueprint'); END""",
    "conflicts": """
        CREATE TRIGGER conflicts_published_frozen_{op} BEFORE {OP} ON conflicts
        WHEN (SELECT status FROM blueprints WHERE version = {row}.version) = 'published'
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: conflicts of a published blueprint'); END""",
    "checks": """
        CREATE TRIGGER checks_write_once_{op} BEFORE {OP} ON checks
        BEGIN SELECT RAISE(ABORT, 'check_immutable: stored check results never change'); END""",
}
PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION blueprint_published_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM blueprints WHERE version = OLD.version AND status = 'published') THEN
        RAISE EXCEPTION 'blueprint_immutable: % of published blueprint %', TG_TABLE_NAME, OLD.version
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN COALESCE(NEW, OLD);
END $$;
CREATE OR REPLACE FUNCTION check_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'check_immutable: stored check results never change' USING ERRCODE = 'restrict_violation';
END $$;
"""
PG_TRIGGERS = (
    "CREATE TRIGGER blueprints_published_frozen BEFORE UPDATE OR DELETE ON blueprints FOR EACH ROW "
    "WHEN (OLD.status = 'published') EXECUTE FUNCTION blueprint_published_frozen()",
    "CREATE TRIGGER pieces_published_frozen BEFORE UPDATE OR DELETE ON pieces FOR EACH ROW "
    "EXECUTE FUNCTION blueprint_published_frozen()",
    "CREATE TRIGGER conflicts_published_frozen BEFORE UPDATE OR DELETE ON conflicts FOR EACH ROW "
    "EXECUTE FUNCTION blueprint_published_frozen()",
    "CREATE TRIGGER checks_write_once BEFORE UPDATE OR DELETE ON checks FOR EACH ROW "
    "EXECUTE FUNCTION check_write_once()",
)


def _immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        for statement in PG_TRIGGERS:
            op.execute(statement)
        return
    for template in SQLITE_TRIGGERS.values():
        for kind in ("update", "delete"):
            op.execute(template.format(op=kind, OP=kind.upper(), row="OLD"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS blueprint_published_frozen() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS check_write_once() CASCADE")
    op.drop_table("checks")
    for table in reversed(GEOMETRY_TABLES):
        _discard_geometry(table)
        op.drop_table(table)
    op.drop_table("blueprints")
    op.drop_table("layers")


def _discard_geometry(table: str) -> None:
    """SpatiaLite keeps geometry metadata and an R*Tree table per column; remove them first."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(sa.text(f"SELECT DisableSpatialIndex('{table}', 'geom')"))
    op.execute(sa.text(f"DROP TABLE IF EXISTS idx_{table}_geom"))
    op.execute(sa.text(f"SELECT DiscardGeometryColumn('{table}', 'geom')"))
