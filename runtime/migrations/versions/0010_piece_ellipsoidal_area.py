"""0010_piece_ellipsoidal_area: each piece's area on the CGCS2000 ellipsoid (``pieces.ellipsoidal_area_m2``).

Own-zone Gauss-Krüger areas are up to +0.05 % at a zone edge, so per-kind sums over a province spanning
three zones miss the 0.01 % goal; the build now stores the ellipsoidal area beside ``area_m2`` (see
``layers.areas.zone_and_ellipsoidal_areas``). Versions stored before keep NULL (published pieces are
write-once; their summaries report the ellipsoidal sums as null). A plain ADD COLUMN on both stores: no
table rebuild, so SpatiaLite's geometry registration and the write-once triggers stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_piece_ellipsoidal_area"
down_revision = "0009_upload_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pieces", sa.Column("ellipsoidal_area_m2", sa.Float, nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("pieces", "ellipsoidal_area_m2")
        return
    # SQLite ≥ 3.35 drops a column in place (a batch rebuild would lose the SpatiaLite geometry column)
    op.execute("ALTER TABLE pieces DROP COLUMN ellipsoidal_area_m2")
