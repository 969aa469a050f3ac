"""Write-once guards in the database itself, against the statements the red team used (issue #16 defect 1).

Every statement here was accepted before migration 0006_guards: SQLite's ``INSERT OR REPLACE`` deletes
the old row without firing DELETE triggers, an INSERT into a published version's pieces was never
checked, an UPDATE could move draft pieces into a published version, and PostgreSQL's TRUNCATE fires no
row triggers.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from blueprint.store import BlueprintStore
from checks.store import CheckStore
from tests.storage.helpers import blueprint

CHECK_COLUMNS = ("check_id, blueprint_version, project_type, verdict, result_json, input_hash, created_by, "
                 "created_at")
CHECK_ROW = "'v1', 'industrial', 'pass', '{}', 'x', 'mallory', CURRENT_TIMESTAMP"
BLUEPRINT_COLUMNS = ("version, seq, status, crs, precedence, tolerance_m, layers, absorbed, summary, meta, "
                     "created_by, created_at")
BLUEPRINT_COPY = ("INSERT{how} INTO blueprints (" + BLUEPRINT_COLUMNS + ") SELECT {version}, seq, "
                  "'draft', crs, precedence, tolerance_m, layers, absorbed, summary, meta, 'mallory', "
                  "created_at "
                  "FROM blueprints WHERE version = 'v1'")
PIECE_COPY = ("INSERT{how} INTO pieces (version, piece_id, kind, kinds, covered_by, sources, area_m2, geom) "
              "SELECT {version}, piece_id{suffix}, kind, kinds, covered_by, sources, area_m2, geom "
              "FROM pieces WHERE version = 'v1'")
CONFLICT_COPY = ("INSERT INTO conflicts (version, conflict_id, kind_a, kind_b, layer_a, layer_b, "
                 "feature_ids, rule, resolution, winner, area_m2, geom) SELECT version, conflict_id || 'x', "
                 "kind_a, "
                 "kind_b, layer_a, layer_b, feature_ids, rule, resolution, winner, area_m2, geom "
                 "FROM conflicts WHERE version = 'v1'")


def _published(engine: sa.Engine) -> BlueprintStore:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    store.publish("v1", by="admin")
    store.save_draft(blueprint("v2"))
    return store


def _stored_check(engine: sa.Engine) -> CheckStore:
    store = CheckStore(engine)
    store.save("chk-1", '{"verdict": "conflict"}', blueprint_version="v1", project_type="industrial",
               verdict="conflict", input_hash="sha256:abc", idempotency_key="k1", by="审批系统")
    return store


BLUEPRINT_STATEMENTS = {
    "insert into published pieces": PIECE_COPY.format(how="", version="version", suffix=" || 'x'"),
    "insert into published conflicts": CONFLICT_COPY,
    "move draft pieces into published": "UPDATE pieces SET version = 'v1', piece_id = piece_id || 'y' "
                                        "WHERE version = 'v2'",
    "upsert published blueprint": BLUEPRINT_COPY.format(how="", version="version")
    + " ON CONFLICT (version) DO UPDATE SET status = 'draft'",
}
SQLITE_BLUEPRINT_STATEMENTS = {
    "replace published blueprint": BLUEPRINT_COPY.format(how=" OR REPLACE", version="version"),
    "replace published blueprint by its seq": BLUEPRINT_COPY.format(how=" OR REPLACE", version="'v9'"),
    "update or replace draft over published seq": "UPDATE OR REPLACE blueprints SET seq = "
                                                  "(SELECT seq FROM blueprints WHERE version = 'v1') "
                                                  "WHERE version = 'v2'",
    "replace published pieces": PIECE_COPY.format(how=" OR REPLACE", version="version", suffix=""),
}
CHECK_STATEMENTS = {
    "upsert stored check": f"INSERT INTO checks ({CHECK_COLUMNS}) VALUES ('chk-1', {CHECK_ROW}) "
                           "ON CONFLICT (check_id) DO UPDATE SET verdict = 'pass'",
}
SQLITE_CHECK_STATEMENTS = {
    "replace stored check": f"INSERT OR REPLACE INTO checks ({CHECK_COLUMNS}) VALUES ('chk-1', {CHECK_ROW})",
    "replace stored check by its key": f"INSERT OR REPLACE INTO checks ({CHECK_COLUMNS}, idempotency_key) "
                                       f"VALUES ('chk-2', {CHECK_ROW}, 'k1')",
    "replace into": f"REPLACE INTO checks ({CHECK_COLUMNS}) VALUES ('chk-1', {CHECK_ROW})",
}


def _only(engine: sa.Engine, dialect: str | None) -> None:
    if dialect is not None and engine.dialect.name != dialect:
        pytest.skip(f"{dialect} syntax")


@pytest.mark.parametrize(("name", "dialect"), [(n, None) for n in BLUEPRINT_STATEMENTS]
                         + [(n, "sqlite") for n in SQLITE_BLUEPRINT_STATEMENTS])
def test_published_version_survives_every_write(engine: sa.Engine, name: str, dialect: str | None) -> None:
    _only(engine, dialect)
    store = _published(engine)
    statement = {**BLUEPRINT_STATEMENTS, **SQLITE_BLUEPRINT_STATEMENTS}[name]
    with pytest.raises(sa.exc.DBAPIError, match="blueprint_immutable"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    v1 = store.get("v1")
    assert v1.status == "published" and len(v1.pieces) == 4 and len(v1.conflicts) == 1
    assert v1.created_by != "mallory"


@pytest.mark.parametrize(("name", "dialect"), [(n, None) for n in CHECK_STATEMENTS]
                         + [(n, "sqlite") for n in SQLITE_CHECK_STATEMENTS])
def test_stored_check_survives_every_write(engine: sa.Engine, name: str, dialect: str | None) -> None:
    _only(engine, dialect)
    store = _stored_check(engine)
    statement = {**CHECK_STATEMENTS, **SQLITE_CHECK_STATEMENTS}[name]
    with pytest.raises(sa.exc.DBAPIError, match="check_immutable"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert store.get("chk-1") == '{"verdict": "conflict"}'
    assert store.find_by_key("k1") == '{"verdict": "conflict"}'


@pytest.mark.parametrize("table", ["checks", "blueprints", "pieces", "conflicts"])
def test_truncate_is_refused(engine: sa.Engine, table: str) -> None:
    _only(engine, "postgresql")
    _published(engine)
    _stored_check(engine)
    with pytest.raises(sa.exc.DBAPIError, match="immutable"), engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {table} CASCADE"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pieces WHERE version = 'v1'")).scalar_one() == 4
        assert conn.execute(sa.text("SELECT count(*) FROM checks")).scalar_one() == 1


def test_drafts_stay_writable(engine: sa.Engine) -> None:
    """The guards touch published versions only: drafts are still replaced and deleted as before."""
    store = _published(engine)
    store.save_draft(blueprint("v2"), replace=True)
    with engine.begin() as conn:
        conn.execute(sa.text(PIECE_COPY.format(how="", version="'v2'", suffix=" || 'x'")))
    assert len(store.get("v2").pieces) == 8
    store.delete_draft("v2")
    _stored_check(engine)
    CheckStore(engine).save("chk-2", "{}", blueprint_version="v1", project_type="industrial", verdict="pass",
                            input_hash="x", idempotency_key="k1")  # same key: the first result, no error
