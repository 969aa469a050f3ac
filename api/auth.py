"""api.auth: API-key authentication (header, bearer, HTTP Basic, cookie) and the roles each action needs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
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
from starlette.concurrency import run_in_threadpool

from api.errors import AuthenticationError, InvalidKeyError
from approval.audit import ROLES, Principal, Role
from approval.errors import PermissionDeniedError

log = logging.getLogger("api.auth")

COOKIE_NAME = "blueprint_key"
BASIC_REALM = "One Blueprint"

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


def client_address(request: Request) -> str:
    """The peer address (behind a proxy, run uvicorn with --proxy-headers so this is the client's)."""
    return request.client.host if request.client else "unknown"


async def authenticate(
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
    limits = request.app.state.rate_limits
    if not presented:
        limits.check_address(client_address(request))
        raise AuthenticationError(
            "an API key is required (X-API-Key header, Authorization: Bearer, HTTP Basic with the key "
            "as password, or the blueprint_key cookie) 需要 API 密钥"
        )
    keyring = request.app.state.services.keyring
    # a dev, file or recently verified key is answered on the event loop (no thread hop, which under
    # load costs more than the check itself); a key read from the database is read in a worker thread
    principal: Principal | None = keyring.quick(presented)
    if principal is None:
        principal = await run_in_threadpool(keyring.principal, presented)
    if principal is None:
        limits.check_address(client_address(request))  # key guessing is slowed down, then refused
        raise InvalidKeyError("unknown or revoked API key 密钥无效或已吊销")
    limits.check_caller(principal)
    request.state.principal = principal
    return principal


def require(action: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting the roles allowed to do ``action`` (see :data:`PERMISSIONS`)."""
    roles = PERMISSIONS[action]

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        # async: a sync dependency costs a threadpool hop per request for a dictionary lookup
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
