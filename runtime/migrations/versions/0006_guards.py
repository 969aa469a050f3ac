"""0006_guards: write-once also against REPLACE, upserts, INSERTs into published versions and TRUNCATE.

0001's triggers guarded UPDATE and DELETE of existing rows. The red team (issue #16) got round them:
SQLite's ``INSERT OR REPLACE`` deletes the conflicting row without firing DELETE triggers (unless
``recursive_triggers`` is on), so a stored check or a published blueprint (with its pieces, by cascade)
could be replaced; an INSERT into a published version's pieces or conflicts, or an UPDATE moving draft
rows into it, was never looked at; PostgreSQL's TRUNCATE fires no row triggers. These triggers close
each of those doors; drafts stay as writable as before.
"""

from __future__ import annotations

from alembic import op

revision = "0006_guards"
down_revision = "0005_opinions"  # chained after main's 0005 when merged; was 0004_durable_jobs
branch_labels = None
depends_on = None

PUBLISHED = "(SELECT status FROM blueprints WHERE version = NEW.version) = 'published'"
SQLITE_TRIGGERS = {
    # a REPLACE over a published row (by version or by seq), or an UPDATE OR REPLACE of a draft onto it
    "blueprints_guard_insert": """
        CREATE TRIGGER blueprints_guard_insert BEFORE INSERT ON blueprints
        WHEN EXISTS (SELECT 1 FROM blueprints WHERE status = 'published'
                     AND (version = NEW.version OR seq = NEW.seq))
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: a published blueprint cannot be replaced'); END""",
    "blueprints_guard_update": """
        CREATE TRIGGER blueprints_guard_update BEFORE UPDATE ON blueprints
        WHEN EXISTS (SELECT 1 FROM blueprints WHERE status = 'published' AND version <> OLD.version
                     AND (version = NEW.version OR seq = NEW.seq))
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: a published blueprint cannot be replaced'); END""",
    "pieces_guard_insert": f"""
        CREATE TRIGGER pieces_guard_insert BEFORE INSERT ON pieces WHEN {PUBLISHED}
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: pieces of a published blueprint'); END""",
    "pieces_guard_update": f"""
        CREATE TRIGGER pieces_guard_update BEFORE UPDATE ON pieces WHEN {PUBLISHED}
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: pieces of a published blueprint'); END""",
    "conflicts_guard_insert": f"""
        CREATE TRIGGER conflicts_guard_insert BEFORE INSERT ON conflicts WHEN {PUBLISHED}
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: conflicts of a published blueprint'); END""",
    "conflicts_guard_update": f"""
        CREATE TRIGGER conflicts_guard_update BEFORE UPDATE ON conflicts WHEN {PUBLISHED}
        BEGIN SELECT RAISE(ABORT, 'blueprint_immutable: conflicts of a published blueprint'); END""",
    # a REPLACE over a stored check, by its id or by its idempotency key
    "checks_guard_insert": """
        CREATE TRIGGER checks_guard_insert BEFORE INSERT ON checks
        WHEN EXISTS (SELECT 1 FROM checks WHERE check_id = NEW.check_id
                     OR (NEW.idempotency_key IS NOT NULL AND idempotency_key = NEW.idempotency_key))
        BEGIN SELECT RAISE(ABORT, 'check_immutable: stored check results never change'); END""",
    "audit_log_guard_insert": """
        CREATE TRIGGER audit_log_guard_insert BEFORE INSERT ON audit_log
        WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
}

# PostgreSQL: ON CONFLICT DO UPDATE fires the UPDATE row triggers of 0001, so upserts are covered.
# Rows arriving in (or moved into) a published version are checked once per statement against the
# transition table, not once per row: a bulk COPY of a million draft pieces stays one hash join.
PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION guard_published_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n JOIN blueprints b ON b.version = n.version
               WHERE b.status = 'published') THEN
        RAISE EXCEPTION 'blueprint_immutable: % of a published blueprint', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION guard_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'checks' THEN
        IF EXISTS (SELECT 1 FROM checks) THEN
            RAISE EXCEPTION 'check_immutable: stored check results cannot be truncated'
                USING ERRCODE = 'restrict_violation';
        END IF;
    ELSIF EXISTS (SELECT 1 FROM blueprints WHERE status = 'published') THEN
        RAISE EXCEPTION 'blueprint_immutable: % holds published blueprints', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END $$;
"""
PG_TRIGGERS = [
    f"CREATE TRIGGER {table}_guard_{verb.lower()} AFTER {verb} ON {table} REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION guard_published_rows()"
    for table in ("pieces", "conflicts")
    for verb in ("INSERT", "UPDATE")
] + [
    f"CREATE TRIGGER {table}_guard_truncate BEFORE TRUNCATE ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION guard_truncate()"
    for table in ("blueprints", "pieces", "conflicts", "checks")
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        for statement in PG_TRIGGERS:
            op.execute(statement)
        return
    for statement in SQLITE_TRIGGERS.values():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS guard_published_rows() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS guard_truncate() CASCADE")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
