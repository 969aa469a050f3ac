"""runtime.keys: API keys — stored (salted hashes in ``api_keys``), from a keys file (digests), dev keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from approval.audit import ROLES, SYSTEM, AuditLog, Principal, Role, _iso, now, write
from runtime.errors import KeyFileError

# Well-known keys that exist only when settings.dev_mode is on (the app then logs a loud warning).
DEV_KEYS: Mapping[str, Role] = {
    "dev-admin-key": "admin",
    "dev-planner-key": "planner",
    "dev-reviewer-key": "reviewer",
    "dev-approval-key": "approval_system",
}

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("role", sa.String(32)),
    sa.Column("salt", sa.String(64)),
    sa.Column("secret_hash", sa.String(128)),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("department", sa.String(48)),  # 0005
)


def key_digest(key: str) -> str:
    """What an API keys file stores for a key: sha256 of the whole key, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------------------ api keys

KEY_PREFIX = "obk"


def _hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys ``obk_<key_id>_<secret>``; only ``sha256(salt + secret)`` is stored.

    The secrets are 256-bit random, so one salted sha256 is enough (a slow KDF would only slow every
    request); ``key_id`` finds the row, ``hmac.compare_digest`` compares the hash.

    ``cache_seconds`` > 0 keeps a found row (salt, hash, principal — never the secret) for that long, so
    a busy caller's key is not read from the database on every request; the hash is still compared on
    every request. The trade-off: a key revoked through *another* process (a second worker, the CLI)
    keeps working here for up to ``cache_seconds``; :meth:`revoke` in this process clears the cache at
    once. Unknown key ids are never cached (guessing is rate-limited instead).
    """

    def __init__(self, engine: Engine, *, cache_seconds: float = 0.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str, str, Principal]] = {}
        self._cache_lock = threading.Lock()

    def create(
        self, name: str, role: Role, *, by: Principal = SYSTEM, department: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A new key: returns the key itself (shown once, never stored) and its public record.

        A ``department`` key is bound to one department (the caller checks the key against the
        configured departments)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if (role == "department") != bool(department):
            raise ValueError("a department key names its department; other roles name none")
        key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
        created = now()
        record: dict[str, Any] = {
            "key_id": key_id, "name": name, "role": role, "department": department, "created_by": by.name
        }
        with write(self.engine) as conn:
            conn.execute(
                api_keys.insert().values(
                    salt=salt, secret_hash=_hash_secret(salt, secret), created_at=created, **record
                )
            )
            AuditLog.append(
                conn, by, "key.create", "api_key", key_id,
                after={"name": name, "role": role, "department": department},
            )
        return f"{KEY_PREFIX}_{key_id}_{secret}", {**record, "created_at": _iso(created)}

    def verify(self, presented: str) -> Principal | None:
        """The principal of a presented key, ``None`` if it is unknown, malformed or revoked."""
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
            return None
        found = self._cached(parts[1]) or self._lookup(parts[1])
        if found is None:
            return None
        salt, secret_hash, principal = found
        if not hmac.compare_digest(_hash_secret(salt, parts[2]), secret_hash):
            return None
        return principal

    def cached(self, presented: str) -> Principal | None:
        """The principal of a presented key if its row is in the cache (no database access), else None
        (then call :meth:`verify`)."""
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[2]:
            return None
        found = self._cached(parts[1])
        if found is None or not hmac.compare_digest(_hash_secret(found[0], parts[2]), found[1]):
            return None
        return found[2]

    def _cached(self, key_id: str) -> tuple[str, str, Principal] | None:
        if self.cache_seconds <= 0:
            return None
        held = self._cache.get(key_id)
        if held is None or time.monotonic() >= held[0]:
            return None
        return held[1], held[2], held[3]

    def _lookup(self, key_id: str) -> tuple[str, str, Principal] | None:
        """The key's salt, hash and principal from the database (None: unknown or revoked); cached."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        principal = Principal(row["name"], row["role"], row["key_id"], row["department"])
        if self.cache_seconds > 0:
            with self._cache_lock:
                self._cache[key_id] = (time.monotonic() + self.cache_seconds, row["salt"], row["secret_hash"],
                                       principal)
        return row["salt"], row["secret_hash"], principal

    def forget(self) -> None:
        """Drop every cached key (a key was revoked here)."""
        with self._cache_lock:
            self._cache.clear()

    def revoke(self, key_id: str, *, by: Principal = SYSTEM) -> bool:
        with write(self.engine) as conn:
            done = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            ).rowcount
            if done:
                AuditLog.append(conn, by, "key.revoke", "api_key", key_id)
        self.forget()  # also when nothing changed: another process may have revoked it meanwhile
        return bool(done)

    def list(self) -> list[dict[str, Any]]:
        cols = [
            api_keys.c.key_id,
            api_keys.c.name,
            api_keys.c.role,
            api_keys.c.department,
            api_keys.c.created_by,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        ]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols).order_by(api_keys.c.created_at)).mappings().all()
        return [{**r, "created_at": _iso(r["created_at"]), "revoked_at": _iso(r["revoked_at"])} for r in rows]


def load_key_file(path: Path) -> dict[str, Principal]:
    """Keys provisioned by configuration: a JSON list of ``{"name", "role", "sha256"}`` (and
    ``"department"`` for a ``department`` key: the department it answers for).

    Only digests are in the file (``blueprint keys digest`` style: ``sha256(key)``); the keys themselves
    are random and long, so an unsalted digest is safe to keep in configuration management.
    """
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"API keys file {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise KeyFileError(f"API keys file {path}: expected a JSON list of {{name, role, sha256}}")
    ring: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        ok = isinstance(entry, dict) and entry.get("role") in ROLES and isinstance(entry.get("name"), str)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not ok or not isinstance(digest, str) or len(digest) != 64:
            raise KeyFileError(
                f"API keys file {path}: entry {i + 1} needs name, role (one of "
                f"{', '.join(ROLES)}) and a 64-hex sha256"
            )
        department = entry.get("department")
        if (entry["role"] == "department") != isinstance(department, str) or department == "":
            raise KeyFileError(
                f"API keys file {path}: entry {i + 1}: a department key names its department "
                "(and only a department key does)"
            )
        ring[digest.lower()] = Principal(entry["name"], entry["role"], f"file:{i + 1}", department)
    return ring


class KeyRing:
    """Checks presented keys: stored (hashed) keys, keys from the configured file, and in dev mode
    the well-known dev keys."""

    def __init__(self, keys: KeyStore, *, dev_mode: bool, key_file: Path | None = None) -> None:
        self.keys = keys
        self.dev_mode = dev_mode
        self.from_file = load_key_file(key_file) if key_file is not None else {}

    def quick(self, presented: str) -> Principal | None:
        """The principal when it is known without the database (dev key, keys file, cached stored key);
        None means "ask :meth:`principal`", which may read the database (call it off the event loop)."""
        found = self._configured(presented)
        return found if found is not None else self.keys.cached(presented)

    def principal(self, presented: str) -> Principal | None:
        found = self._configured(presented)
        return found if found is not None else self.keys.verify(presented)

    def _configured(self, presented: str) -> Principal | None:
        """A dev key (dev mode) or a key of the configured keys file."""
        if self.dev_mode:
            for dev_key, role in DEV_KEYS.items():
                if hmac.compare_digest(presented.encode("utf-8", "replace"), dev_key.encode()):
                    return Principal(f"dev-{role}", role, "dev")
        if self.from_file:
            return self.from_file.get(key_digest(presented))
        return None
