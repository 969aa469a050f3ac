"""approval.audit and runtime.keys on both backends: the audit log is append-only, keys are stored hashed."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from approval.audit import AuditLog, Principal
from runtime.keys import KeyStore


def test_audit_log_refuses_update_and_delete(engine: Engine) -> None:
    audit = AuditLog(engine)
    audit.record(Principal("alice", "admin"), "test.action", "thing", "T1", before={"a": 1}, after={"a": 2})
    (entry,) = audit.entries(subject_id="T1")
    assert entry["actor"] == "alice" and entry["before"] == {"a": 1} and entry["after"] == {"a": 2}
    assert not hasattr(audit, "update") and not hasattr(audit, "delete")
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert audit.entries(subject_id="T1")[0]["actor"] == "alice"


def test_keys_are_stored_hashed(engine: Engine) -> None:
    keys = KeyStore(engine)
    key, record = keys.create("approval system", "approval_system")
    secret = key.split("_", 2)[2]
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text("SELECT * FROM api_keys")).mappings()]
    dumped = json.dumps(rows, default=str)
    assert secret not in dumped and key not in dumped
    assert keys.verify(key) == Principal("approval system", "approval_system", record["key_id"])
    assert keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.verify("garbage") is None
    assert keys.revoke(record["key_id"]) and keys.verify(key) is None
    assert [e["action"] for e in AuditLog(engine).entries(subject_type="api_key")] == [
        "key.create",
        "key.revoke",
    ]


def test_unknown_role_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        KeyStore(engine).create("x", "superuser")  # type: ignore[arg-type]
