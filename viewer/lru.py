"""viewer.lru: a small thread-safe LRU cache with a time-to-live per entry, building each key once."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class LRU:
    """A small thread-safe LRU cache with an optional time-to-live per entry."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def _fresh(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and (hit[0] == math.inf or hit[0] > time.monotonic()):
                self._data.move_to_end(key)
                return True, hit[1]
            return False, None

    def get(self, key: Hashable, make: Callable[[], Any], ttl: float | None = None) -> Any:
        found, value = self._fresh(key)
        if found:
            return value
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        # one build per key (a burst of tiles must not dissolve the same layer ten times);
        # different keys build in parallel, so a slow layer does not hold up the others
        with building:
            found, value = self._fresh(key)
            if found:
                return value
            try:
                value = make()
            except BaseException:
                with self._lock:  # nothing was built: do not keep this key's lock for ever
                    self._building.pop(key, None)
                raise
            now = time.monotonic()
            with self._lock:
                self._building.pop(key, None)
                self._store(key, value, None if ttl is None else now + ttl)
        return value

    def _store(self, key: Hashable, value: Any, expires: float | None) -> None:
        # called with self._lock held
        self._data[key] = (math.inf if expires is None else expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
