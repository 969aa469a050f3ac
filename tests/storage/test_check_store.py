"""CheckStore on SpatiaLite and PostGIS: verbatim results, idempotency keys, concurrent retries."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from checks.errors import CheckNotFoundError
from checks.store import CheckIdConflictError, CheckStore


def _result(check_id: str, verdict: str = "conflict") -> str:
    # odd spacing, key order and Chinese text: the store must not re-encode any of it
    return (f'{{"check_id": "{check_id}",  "verdict":"{verdict}", '
            '"说明": "位于生态保护红线内", "area_m2": 1.10}')


def _save(store: CheckStore, check_id: str, key: str | None = None, verdict: str = "conflict") -> str:
    return store.save(check_id, _result(check_id, verdict), blueprint_version="v1",
                      project_type="industrial", verdict=verdict, input_hash="sha256:abc",
                      idempotency_key=key, by="审批系统")


def test_result_is_returned_verbatim(engine: sa.Engine) -> None:
    store = CheckStore(engine)
    assert _save(store, "chk-1") == _result("chk-1")
    assert store.get("chk-1") == _result("chk-1")
    meta = store.meta("chk-1")
    assert meta["verdict"] == "conflict" and meta["created_by"] == "审批系统"
    assert meta["blueprint_version"] == "v1" and meta["created_at"].endswith("+00:00")


def test_get_with_meta_is_get_and_meta_in_one_query(engine: sa.Engine) -> None:
    store = CheckStore(engine)
    _save(store, "chk-1")
    selects: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        text, meta = store.get_with_meta("chk-1")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert (text, meta) == (store.get("chk-1"), store.meta("chk-1"))
    assert len(selects) == 1, selects
    with pytest.raises(CheckNotFoundError):
        store.get_with_meta("nope")


def test_missing_check(engine: sa.Engine) -> None:
    with pytest.raises(CheckNotFoundError) as err:
        CheckStore(engine).get("nope")
    assert err.value.code == "check_not_found"


def test_idempotency_key_returns_first_result(engine: sa.Engine) -> None:
    store = CheckStore(engine)
    first = _save(store, "chk-1", key="req-42")
    again = _save(store, "chk-2", key="req-42", verdict="clear")
    assert again == first
    assert store.find_by_key("req-42") == first
    assert store.find_by_key("other") is None
    with pytest.raises(CheckNotFoundError):
        store.get("chk-2")


def test_same_id_twice(engine: sa.Engine) -> None:
    store = CheckStore(engine)
    _save(store, "chk-1")
    assert _save(store, "chk-1") == _result("chk-1")  # a plain retry is harmless
    with pytest.raises(CheckIdConflictError):
        _save(store, "chk-1", verdict="clear")


def test_concurrent_saves_with_one_key_store_one_result(engine: sa.Engine) -> None:
    store = CheckStore(engine)
    workers = 8
    barrier = threading.Barrier(workers)

    def attempt(n: int) -> str:
        barrier.wait()
        return _save(store, f"chk-{n}", key="same-key", verdict=f"v{n}")

    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(attempt, range(workers)))
    assert len(set(answers)) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM checks")).scalar_one() == 1
    winner = json.loads(answers[0])["check_id"]
    assert CheckStore(engine).get(winner) == answers[0]


def test_concurrent_saves_lose_nothing(engine: sa.Engine) -> None:
    store = CheckStore(engine)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: _save(store, f"chk-{n}", key=f"key-{n}"), range(40)))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM checks")).scalar_one() == 40


def test_lost_race_is_answered_by_the_winner(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unique key, not a look-up before the insert, is what stops a second insert: the save goes
    straight to the INSERT and asks for the earlier answer only after the database refused it."""
    store = CheckStore(engine)
    first = _save(store, "chk-1", key="k")
    real = CheckStore._earlier
    calls: list[int] = []

    def counted(*args: object) -> str | None:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(CheckStore, "_earlier", staticmethod(counted))
    assert _save(store, "chk-2", key="k", verdict="clear") == first
    assert _save(store, "chk-3", key="k3") == _result("chk-3")
    assert len(calls) == 1  # only the refused insert looked the winner up
    assert not CheckStore(engine).exists("chk-2")


@pytest.mark.parametrize("statement", ["UPDATE checks SET verdict = 'pass'", "DELETE FROM checks"])
def test_database_itself_keeps_results_write_once(engine: sa.Engine, statement: str) -> None:
    store = CheckStore(engine)
    _save(store, "chk-1")
    with pytest.raises(sa.exc.DBAPIError, match="check_immutable"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert store.get("chk-1") == _result("chk-1")
