"""0003_parcel_revisions: earlier parcel sets of a project kept when new parcels replace them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_parcel_revisions"
down_revision = "0002_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_parcel_revisions",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),  # the project's parcel revision it was
        sa.Column("parcel_count", sa.Integer, nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("parcels_checksum", sa.String(64), nullable=False),
        # the replaced parcels as an RFC 7946 FeatureCollection (EPSG:4326): a record, never queried spatially
        sa.Column("geojson", sa.Text, nullable=False),
        sa.Column("replaced_by", sa.String(200), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "revision", name="pk_project_parcel_revisions"),
    )
    with op.batch_alter_table("project_checks") as batch:
        batch.add_column(sa.Column("parcels_revision", sa.Integer))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("parcels_revision", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("parcels_revision")
    with op.batch_alter_table("project_checks") as batch:
        batch.drop_column("parcels_revision")
    op.drop_table("project_parcel_revisions")
