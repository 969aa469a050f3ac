"""api.ratelimit: request budgets per API key (by role) and per client address, on the ``limits`` library.

Who is counted where:

* a request with a valid key is counted against that key, with its role's budget
  (``BLUEPRINT_RATE_LIMIT_ROLES``): many users behind one office address are not throttled together;
* a request with no key or a wrong one is counted against the client address
  (``BLUEPRINT_RATE_LIMIT_ANONYMOUS``), so guessing keys is slowed down as well as refused;
* the public list (``/public``) and the sign-in form (``/viewer/login``) have budgets of their own per
  address, stricter (``BLUEPRINT_RATE_LIMIT_PUBLIC``, ``BLUEPRINT_RATE_LIMIT_LOGIN``);
* ``/health`` and ``/ready`` are never limited (load balancers poll them).

Counts live in ``BLUEPRINT_RATE_LIMIT_STORAGE`` (``memory://`` by default: per process; several server
processes share a budget only through a shared store such as ``redis://``). Over budget: 429
``{code: "too_many_requests", detail, message_zh}`` with ``Retry-After`` in seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import TooManyRequestsError, error_body
from approval.audit import Principal
from runtime.settings import Settings


class RateLimitedError(TooManyRequestsError):
    """Too many requests from one key or one address; ``retry_after`` seconds until the next is let in."""

    def __init__(self, user_message: str, *, retry_after: int) -> None:
        super().__init__(user_message)
        self.retry_after = retry_after


class RateLimits:
    """The budgets of one app, checked by :func:`api.auth.authenticate` and :class:`PublicPathLimit`."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self.roles = {role: parse_many(value) for role, value in settings.rate_limit_roles.items()}
        self.anonymous = parse_many(settings.rate_limit_anonymous)
        self.public = parse_many(settings.rate_limit_public)
        self.login = parse_many(settings.rate_limit_login)

    def check_caller(self, principal: Principal) -> None:
        """Count one request of an authenticated caller against its key's role budget."""
        budget = self.roles.get(principal.role)
        if self.enabled and budget:
            who = hashlib.sha256(f"{principal.key_id}\0{principal.name}".encode()).hexdigest()[:24]
            self._hit(budget, "key", who, f"API key '{principal.name}' ({principal.role})")

    def check_address(self, address: str, scope: str = "anonymous") -> None:
        """Count one request from ``address`` in ``scope`` (anonymous, public or login)."""
        budget = {"anonymous": self.anonymous, "public": self.public, "login": self.login}[scope]
        if self.enabled and budget:
            self._hit(budget, scope, address, f"client address {address} ({scope})")

    def _hit(self, budget: Sequence[RateLimitItem], scope: str, who: str, what: str) -> None:
        for item in budget:
            if not self.limiter.hit(item, scope, who):
                reset, _ = self.limiter.get_window_stats(item, scope, who)
                retry = max(1, math.ceil(reset - time.time()))
                raise RateLimitedError(
                    f"too many requests from {what}: the limit is {item}; retry in {retry} s "
                    "请求过于频繁",
                    retry_after=retry,
                )

    def reset(self) -> None:
        """Forget every count (tests, and an operator after changing budgets)."""
        self.limiter.storage.reset()


class PublicPathLimit:
    """The per-address budgets of the pages anyone may open: ``/public`` and the sign-in form
    (``/viewer/login``, both the form and the POST that sets the key cookie)."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        which = "public" if path == "/public" or path.startswith("/public/") else (
            "login" if path == "/viewer/login" else None)
        if which is not None:
            client = scope.get("client")
            try:
                self.limits.check_address(client[0] if client else "unknown", which)
            except RateLimitedError as exc:
                body = json.dumps(error_body(exc.code, exc.user_message)).encode()
                await send({"type": "http.response.start", "status": 429, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(exc.retry_after).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
