"""0009_upload_jobs: a job's progress detail (features read / total, chunk n of m), and on PostgreSQL a
``blueprint_service`` role that may read and write rows but owns nothing and has no TRUNCATE.

A superuser or a table's owner can always TRUNCATE (and disable the 0006 guard triggers); the service is
meant to connect as a login role granted ``blueprint_service`` (``scripts/setup.sh`` makes one,
``blueprint_app``), so a stolen service connection cannot empty ``checks``, ``pieces`` or
``blueprints``. The role is created only when the migrating user may create roles; otherwise a notice
says so and the grants are skipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_upload_jobs"
down_revision = "0006_guards"
branch_labels = None
depends_on = None

SERVICE_ROLE = "blueprint_service"
PG_GRANTS = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
        BEGIN
            CREATE ROLE {SERVICE_ROLE} NOLOGIN;
        EXCEPTION WHEN insufficient_privilege OR duplicate_object THEN
            RAISE NOTICE 'role {SERVICE_ROLE} not created (%), grants skipped', SQLERRM;
            RETURN;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {SERVICE_ROLE}', current_database());
    GRANT USAGE ON SCHEMA public TO {SERVICE_ROLE};
    -- rows, never TRUNCATE, REFERENCES or TRIGGER; the 0001/0006 triggers keep published rows write-once
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SERVICE_ROLE};
    REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM {SERVICE_ROLE};
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE};
    -- tables later migrations create get the same grants
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {SERVICE_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {SERVICE_ROLE};
END $$;
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("progress_detail", sa.Text))  # JSON, see api.jobs
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GRANTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {SERVICE_ROLE};
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {SERVICE_ROLE};
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {SERVICE_ROLE};
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {SERVICE_ROLE};
    END IF;
END $$;""")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("progress_detail")
