"""approval.webhooks: webhook URLs checked, bodies signed (HMAC-SHA256), one delivery attempt, backoff."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from approval.errors import InvalidWebhookError

SIGNATURE_HEADER = "X-Blueprint-Signature"
TIMESTAMP_HEADER = "X-Blueprint-Timestamp"
EVENT_ID_HEADER = "X-Blueprint-Event-Id"
MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 5.0


def validate_url(url: str) -> str:
    """http/https only, a host, no user:password in the URL (secrets go in the signing secret)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 — a malformed port raises here
    except ValueError as exc:
        raise InvalidWebhookError(f"webhook URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookError(f"webhook URL must be http or https, not '{parts.scheme or url}'")
    if not parts.hostname:
        raise InvalidWebhookError("webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookError("webhook URL must not carry credentials; the body is signed instead")
    if parts.fragment:
        raise InvalidWebhookError("webhook URL must not have a #fragment")
    return url.strip()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (tests use it too): recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt: 2, 4, 8 … seconds, at most an hour."""
    return timedelta(seconds=min(3600, 2 ** max(1, attempts)))


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None
    error: str | None


def deliver(
    url: str, secret: str, event_id: str, body: bytes, *, timeout: float = TIMEOUT_SECONDS
) -> Attempt:
    """POST one event; 2xx is delivered, anything else (timeout, refused, 3xx–5xx) is a failed attempt."""
    stamp = str(int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            EVENT_ID_HEADER: event_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(secret, stamp, body),
            "User-Agent": "one-blueprint-webhook/1",
        },
    )
    try:
        with _opener().open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return Attempt(False, exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Attempt(False, None, str(getattr(exc, "reason", exc))[:500])
    return Attempt(200 <= status < 300, status, None if 200 <= status < 300 else f"HTTP {status}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is a failed attempt, never a POST to somewhere else


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
