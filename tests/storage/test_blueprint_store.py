"""BlueprintStore on SpatiaLite and PostGIS: round trip, versions, publishing, immutability, atomicity."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
import sqlalchemy as sa

from blueprint.errors import (
    BlueprintError,
    BlueprintImmutableError,
    BlueprintNotFoundError,
    NoPublishedBlueprintError,
)
from blueprint.model import Blueprint
from blueprint.store import BlueprintStore, BlueprintVersionExistsError
from layers.store import LayerStore
from tests.geoms import X0, Y0
from tests.storage.helpers import blueprint, farmland_layer

PIECE_COLUMNS = ["piece_id", "kind", "kinds", "covered_by", "sources", "area_m2", "ellipsoidal_area_m2",
                 "geometry"]
CONFLICT_COLUMNS = ["conflict_id", "kind_a", "kind_b", "layer_a", "layer_b", "feature_ids", "rule",
                    "resolution", "winner", "area_m2", "geometry"]


def test_round_trip_with_hand_made_pieces_and_conflicts(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    original = blueprint("v1", layers=(farmland_layer(),))
    summary = store.save_draft(original)
    assert summary["status"] == "draft" and summary["piece_count"] == 4 and summary["conflict_count"] == 1

    loaded = store.get("v1")
    assert loaded.status == "draft" and loaded.crs.to_epsg() == 4548
    assert list(loaded.pieces.columns) == PIECE_COLUMNS
    assert list(loaded.conflicts.columns) == CONFLICT_COLUMNS
    assert loaded.pieces.crs == original.pieces.crs and loaded.conflicts.crs == original.crs
    for column in PIECE_COLUMNS[:-1]:
        assert loaded.pieces[column].tolist() == original.pieces[column].tolist(), column
    for column in CONFLICT_COLUMNS[:-1]:
        assert loaded.conflicts[column].tolist() == original.conflicts[column].tolist(), column
    assert loaded.pieces.geometry.geom_equals_exact(original.pieces.geometry, tolerance=0).all()
    assert loaded.conflicts.geometry.geom_equals_exact(original.conflicts.geometry, tolerance=0).all()
    assert loaded.layers == original.layers and loaded.precedence == original.precedence
    assert loaded.tolerance_m == 0.5 and loaded.created_by == "张工"
    assert loaded.absorbed == ({"kind": "sliver", "area_m2": 0.12},)
    assert loaded.created_at is not None and loaded.created_at.tzinfo is not None
    assert loaded.summary() == store.summary("v1")


def test_versions_are_numbered_and_ordered(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    assert store.next_version() == "v1"
    for _ in range(1, 12):
        store.save_draft(blueprint(store.next_version(), n_pieces=1))
    assert store.next_version() == "v12"
    assert [s["version"] for s in store.versions()] == [f"v{n}" for n in range(1, 12)]


def test_draft_version_taken_twice(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    with pytest.raises(BlueprintVersionExistsError):
        store.save_draft(blueprint("v1", n_pieces=2))
    store.save_draft(blueprint("v1", n_pieces=2), replace=True)
    assert len(store.get("v1").pieces) == 2


def test_publish_then_immutable(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    published = store.publish("v1", by="王局")
    assert published["status"] == "published" and published["published_by"] == "王局"
    assert published["published_at"]
    assert store.latest_published().version == "v1"
    assert store.versions()[0]["status"] == "published"
    with pytest.raises(BlueprintImmutableError):
        store.publish("v1", by="again")
    with pytest.raises(BlueprintImmutableError):
        store.save_draft(blueprint("v1", n_pieces=1), replace=True)
    with pytest.raises(BlueprintImmutableError):
        store.delete_draft("v1")
    assert len(store.get("v1").pieces) == 4


def test_not_found_errors(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    with pytest.raises(NoPublishedBlueprintError) as err:
        store.latest_published()
    assert err.value.code == "no_published_blueprint"
    for call in (store.get, store.conflicts, lambda v: store.publish(v, by="x"), store.delete_draft):
        with pytest.raises(BlueprintNotFoundError):
            call("v9")


def test_draft_without_pieces_cannot_be_published(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1", n_pieces=0))
    with pytest.raises(BlueprintError):
        store.publish("v1", by="x")
    assert store.summary("v1")["status"] == "draft"


def test_delete_draft(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    store.delete_draft("v1")
    assert store.versions() == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pieces")).scalar_one() == 0


def test_conflicts_of_a_version(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    conflicts = store.conflicts("v1")
    assert conflicts["conflict_id"].tolist() == ["C000001"] and conflicts.crs.to_epsg() == 4548


def test_failure_mid_publish_changes_nothing(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    layers, store = LayerStore(engine), BlueprintStore(engine)
    farmland = farmland_layer()
    layers.save(farmland)
    store.save_draft(blueprint("v1"))
    store.publish("v1", by="admin")
    store.save_draft(blueprint("v2", n_pieces=6, layers=(farmland,)))

    real_mark = BlueprintStore._mark_layers_used

    def mark_then_fail(conn: sa.Connection, layers: list) -> None:
        real_mark(conn, layers)  # the status update and the layer marking have run...
        raise RuntimeError("disk full")  # ...when the last step fails

    monkeypatch.setattr(BlueprintStore, "_mark_layers_used", staticmethod(mark_then_fail))
    with pytest.raises(RuntimeError, match="disk full"):
        store.publish("v2", by="admin")

    assert store.summary("v2")["status"] == "draft"
    assert store.get("v2").published_by is None
    assert layers.summary(farmland.name)["status"] == "draft"
    latest = store.latest_published()
    assert latest.version == "v1" and len(latest.pieces) == 4
    monkeypatch.undo()
    assert store.publish("v2", by="admin")["status"] == "published"
    assert store.latest_published().version == "v2"


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    from runtime.db import make_engine
    from blueprint.store import BlueprintStore

    real_mark = BlueprintStore._mark_layers_used

    def mark_then_crash(conn, layers):
        real_mark(conn, layers)
        os._exit(9)  # the process dies mid-transaction: no rollback, no commit, no cleanup

    BlueprintStore._mark_layers_used = staticmethod(mark_then_crash)
    BlueprintStore(make_engine(sys.argv[1])).publish("v2", by="crasher")
""")


def test_process_killed_mid_publish_leaves_previous_version(db_url: str, engine: sa.Engine) -> None:
    layers, store = LayerStore(engine), BlueprintStore(engine)
    farmland = farmland_layer()
    layers.save(farmland)
    store.save_draft(blueprint("v1"))
    store.publish("v1", by="admin")
    store.save_draft(blueprint("v2", n_pieces=6, layers=(farmland,)))
    engine.dispose()  # the crashing process must be able to take the write lock

    done = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, db_url], capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()

    assert store.summary("v2")["status"] == "draft"
    assert layers.summary(farmland.name)["status"] == "draft"
    latest = store.latest_published()
    assert latest.version == "v1" and len(latest.pieces) == 4
    assert store.publish("v2", by="admin")["status"] == "published"


@pytest.mark.parametrize("statement", [
    "UPDATE blueprints SET created_by = 'mallory' WHERE version = 'v1'",
    "DELETE FROM blueprints WHERE version = 'v1'",
    "UPDATE pieces SET kind = 'urban_space' WHERE version = 'v1'",
    "DELETE FROM pieces WHERE version = 'v1'",
    "DELETE FROM conflicts WHERE version = 'v1'",
])
def test_database_itself_refuses_to_change_published_versions(engine: sa.Engine, statement: str) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    store.publish("v1", by="admin")
    with pytest.raises(sa.exc.DBAPIError, match="blueprint_immutable"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert len(store.get("v1").pieces) == 4 and store.get("v1").created_by == "张工"


def test_awkward_text_survives_bulk_loading(engine: sa.Engine) -> None:
    """Commas, quotes, newlines, backslashes and empty strings (CSV COPY on PostGIS)."""
    store = BlueprintStore(engine)
    original = blueprint("v1")
    awkward = ['a,b "quoted"', "line\nbreak", "back\\slash\\N", ""]
    original.pieces["kind"] = awkward
    original.conflicts["resolution"] = ["生态保护红线优先,\t\"red line\"\r\nprevails"]
    original.conflicts["layer_b"] = [""]
    store.save_draft(original)
    loaded = store.get("v1")
    assert loaded.pieces["kind"].tolist() == awkward
    assert loaded.conflicts["resolution"].tolist() == original.conflicts["resolution"].tolist()
    assert loaded.conflicts["layer_b"].tolist() == [""]


def test_reading_a_draft_while_it_is_replaced_sees_one_state(engine: sa.Engine) -> None:
    """get() reads the row and its pieces from one snapshot, never half of each."""
    store = BlueprintStore(engine)

    def draft(n: int) -> Blueprint:
        made = blueprint("v1", n_pieces=n)
        made.meta = {"n": n}
        return made

    store.save_draft(draft(2))
    stop = threading.Event()

    def replace_repeatedly() -> None:
        n = 2
        while not stop.is_set():
            n = 7 if n == 2 else 2
            store.save_draft(draft(n), replace=True)

    writer = threading.Thread(target=replace_repeatedly)
    writer.start()
    try:
        for _ in range(30):
            seen = store.get("v1")
            assert len(seen.pieces) == seen.meta["n"]
    finally:
        stop.set()
        writer.join()


def test_pages_and_bbox_queries_use_the_database(engine: sa.Engine) -> None:
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1", n_pieces=10))  # squares x = 0..1000 step 100, y = 0..100
    assert store.count("v1") == 10 and store.count("v1", "conflicts") == 1
    page = store.pieces("v1", limit=3, offset=4)
    assert page["piece_id"].tolist() == ["P000005", "P000006", "P000007"]
    assert page.crs.to_epsg() == 4548 and list(page.columns) == PIECE_COLUMNS
    bbox = (X0 + 250, Y0 + 10, X0 + 420, Y0 + 20)  # crosses pieces 3, 4 and 5
    assert store.pieces("v1", bbox=bbox)["piece_id"].tolist() == ["P000003", "P000004", "P000005"]
    assert store.count("v1", bbox=bbox) == 3
    assert store.pieces("v1", bbox=bbox, limit=1, offset=1)["piece_id"].tolist() == ["P000004"]
    assert len(store.conflicts("v1", bbox=(X0 + 60, Y0 + 60, X0 + 70, Y0 + 70))) == 0
    assert len(store.conflicts("v1", bbox=(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20))) == 1
