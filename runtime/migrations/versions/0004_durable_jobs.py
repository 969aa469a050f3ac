"""0004_durable_jobs: a job's input and lease live in the database, so any worker can finish it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_durable_jobs"
down_revision = "0003_parcel_revisions"
branch_labels = None
depends_on = None

COLUMNS = ("payload", "input_dir", "attempts", "lease_owner", "lease_until", "progress")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("payload", sa.Text))  # JSON: what the handler needs besides files
        batch.add_column(sa.Column("input_dir", sa.String(500)))  # files under data_dir/jobs/<job_id>
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.String(100)))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("progress", sa.Float))
    op.create_index("ix_jobs_claim", "jobs", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_jobs_claim", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
