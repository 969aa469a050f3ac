"""runtime.latest: the latest published blueprint version, read from the database at most once a second."""

from __future__ import annotations

import threading
import time

from blueprint.store import BlueprintStore

TTL_SECONDS = 1.0


class LatestPublished:
    """Which version a check without ``blueprint_version`` screens against.

    Every check used to ask the database; under load that query is a fixed cost on the hot path.
    The answer is kept for ``ttl`` seconds and dropped at once when this process publishes, so a
    publish made through *another* process (a second uvicorn worker, the CLI) reaches new checks here
    within ``ttl``. A check always records the version it was screened against.
    """

    def __init__(self, store: BlueprintStore, ttl: float = TTL_SECONDS) -> None:
        self._store, self._ttl = store, ttl
        self._lock = threading.Lock()
        self._held: tuple[float, str] | None = None

    def get(self) -> str:
        now = time.monotonic()
        with self._lock:
            held = self._held
        if held is not None and now - held[0] < self._ttl:
            return held[1]
        version = self._store.latest_published_version()  # NoPublishedBlueprintError is not cached
        with self._lock:
            self._held = (now, version)
        return version

    def forget(self) -> None:
        """Drop the held answer (this process just published)."""
        with self._lock:
            self._held = None
