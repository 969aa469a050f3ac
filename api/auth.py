"""api.auth: API-key authentication (header, bearer, HTTP Basic, cookie) and the roles each action needs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from api.errors import ApiError, AuthenticationError, InvalidKeyError, PermissionDeniedError
from api.store import ROLES, KeyStore, Principal, Role

log = logging.getLogger("api.auth")

COOKIE_NAME = "blueprint_key"
BASIC_REALM = "One Blueprint"

# Well-known keys that exist only when settings.dev_mode is on (the app then logs a loud warning).
DEV_KEYS: Mapping[str, Role] = {
    "dev-admin-key": "admin",
    "dev-planner-key": "planner",
    "dev-reviewer-key": "reviewer",
    "dev-approval-key": "approval_system",
}

# Who may do what. Every route names one of these actions; reading is open to every role.
PERMISSIONS: Mapping[str, frozenset[Role]] = {
    "read": frozenset(ROLES),
    "check": frozenset({"planner", "approval_system", "admin"}),  # screen parcels
    "project": frozenset({"planner", "admin"}),  # create projects, screen a project's parcels
    "advance": frozenset({"planner", "reviewer", "admin"}),  # send a project to joint review
    "decide": frozenset({"reviewer", "admin"}),  # record decisions, clear or reject a project
    "admin": frozenset({"admin"}),  # layers, builds, publishing, audit log, keys, webhooks
    "answer": frozenset({"department", "admin"}),  # a department's opinion (an admin records a paper one)
}

_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyHeader",
    description="API key in the X-API-Key header",
)
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer", description="Authorization: Bearer <API key>")
# GIS clients (QGIS's authentication manager, GDAL's USERPWD) send HTTP Basic; the password is the key
_basic = HTTPBasic(
    auto_error=False,
    scheme_name="Basic",
    realm=BASIC_REALM,
    description="HTTP Basic: any user name, the API key as the password (for QGIS and GDAL)",
)
_cookie = APIKeyCookie(
    name=COOKIE_NAME,
    auto_error=False,
    scheme_name="ViewerCookie",
    description="the key as the blueprint_key cookie (set by /viewer/login)",
)


class KeyFileError(ApiError):
    """``settings.api_keys_file`` is unreadable or malformed (a start-up error, never a request's)."""

    code = "invalid_api_keys_file"


def key_digest(key: str) -> str:
    """What an API keys file stores for a key: sha256 of the whole key, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


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

    def principal(self, presented: str) -> Principal | None:
        if self.dev_mode:
            for dev_key, role in DEV_KEYS.items():
                if hmac.compare_digest(presented.encode("utf-8", "replace"), dev_key.encode()):
                    return Principal(f"dev-{role}", role, "dev")
        if self.from_file:
            found = self.from_file.get(key_digest(presented))
            if found is not None:
                return found
        return self.keys.verify(presented)


def authenticate(
    request: Request,
    header: Annotated[str | None, Security(_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    basic: Annotated[HTTPBasicCredentials | None, Security(_basic)] = None,
    cookie: Annotated[str | None, Security(_cookie)] = None,
) -> Principal:
    """The caller, from ``X-API-Key``, ``Authorization: Bearer``, HTTP Basic (the password is the key)
    or the ``blueprint_key`` cookie."""
    presented = header or (bearer.credentials if bearer else None) or (basic.password if basic else None)
    presented = presented or cookie
    if not presented:
        raise AuthenticationError(
            "an API key is required (X-API-Key header, Authorization: Bearer, HTTP Basic with the key "
            "as password, or the blueprint_key cookie) 需要 API 密钥"
        )
    principal: Principal | None = request.app.state.services.keyring.principal(presented)
    if principal is None:
        raise InvalidKeyError("unknown or revoked API key 密钥无效或已吊销")
    request.state.principal = principal
    return principal


def require(action: str) -> Callable[[Principal], Principal]:
    """A dependency admitting the roles allowed to do ``action`` (see :data:`PERMISSIONS`)."""
    roles = PERMISSIONS[action]

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            raise PermissionDeniedError(
                f"role '{principal.role}' may not do this ({action}); needs one of "
                f"{', '.join(sorted(roles))} 无此权限"
            )
        return principal

    dependency.__name__ = f"require_{action}"
    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Checker = Annotated[Principal, Depends(require("check"))]
ProjectWriter = Annotated[Principal, Depends(require("project"))]
Advancer = Annotated[Principal, Depends(require("advance"))]
Decider = Annotated[Principal, Depends(require("decide"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Answerer = Annotated[Principal, Depends(require("answer"))]
