"""runtime.caches: published blueprints with their Screeners, and stored layers, held in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from blueprint.model import Blueprint
from checks.conditions import load_compatibility
from checks.engine import Screener
from checks.rules import Rules
from layers.catalogue import Catalogue
from layers.model import PlanLayer
from runtime.errors import BlueprintNotPublishedError
from runtime.settings import Settings
from runtime.stores import Stores

CACHED_VERSIONS = 4  # published blueprints (and their screeners) kept in memory


@dataclass(frozen=True)
class CheckOutcome:
    """A screening answer: the stored JSON text, and whether it was replayed for an Idempotency-Key."""

    text: str
    check_id: str
    replayed: bool


class PublishedCache:
    """Published blueprints and their Screeners, loaded once per version and shared by every request.

    Published versions are immutable, so nothing is ever invalidated; the least recently used version
    leaves when more than ``size`` are held. A per-version lock keeps concurrent first requests from
    building the same STRtree twice.
    """

    def __init__(
        self,
        stores: Stores,
        rules: Rules,
        catalogue: Catalogue,
        settings: Settings,
        size: int = CACHED_VERSIONS,
    ) -> None:
        self._stores, self._rules, self._catalogue, self._settings = stores, rules, catalogue, settings
        self._size = size
        self._items: OrderedDict[str, tuple[Blueprint, Screener | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._version_locks: dict[str, threading.Lock] = {}

    def blueprint(self, version: str) -> Blueprint:
        """A published blueprint from the cache; drafts are read fresh (they may be replaced)."""
        with self._lock:
            if version in self._items:
                self._items.move_to_end(version)
                return self._items[version][0]
            version_lock = self._version_locks.setdefault(version, threading.Lock())
        with version_lock:
            with self._lock:
                if version in self._items:
                    return self._items[version][0]
            blueprint = self._stores.blueprints.get(version)
            if blueprint.status == "published":
                self._put(version, blueprint, None)
            return blueprint

    def screener(self, version: str) -> Screener:
        with self._lock:
            held = self._items.get(version)
            if held is not None and held[1] is not None:
                self._items.move_to_end(version)
                return held[1]
            version_lock = self._version_locks.setdefault(version, threading.Lock())
        blueprint = self.blueprint(version)
        if blueprint.status != "published":
            raise BlueprintNotPublishedError(
                f"blueprint {version} is a draft; checks use published versions only 仅可对已发布版本检测"
            )
        with version_lock:
            with self._lock:
                held = self._items.get(version)
                if held is not None and held[1] is not None:
                    return held[1]
            screener = Screener(
                blueprint,
                self._rules,
                self._catalogue,
                tolerance_m2=self._settings.overlap_tolerance_m2,
                tolerance_ratio=self._settings.overlap_tolerance_ratio,
                compatibility=load_compatibility(self._settings.land_use_compat_file),
            )
            self._put(version, blueprint, screener)
            return screener

    def _put(self, version: str, blueprint: Blueprint, screener: Screener | None) -> None:
        with self._lock:
            self._items[version] = (blueprint, screener)
            self._items.move_to_end(version)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class LayerCache:
    """Stored layers for the OGC items pages, reloaded only when the stored layer changed (checksum/time)."""

    def __init__(self, stores: Stores, size: int = 8) -> None:
        self._stores = stores
        self._size = size
        self._items: OrderedDict[str, tuple[tuple[Any, ...], PlanLayer]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> PlanLayer:
        summary = self._stores.layers.summary(name)  # one small query; LayerNotFoundError if gone
        stamp = (summary["id"], summary["checksum"], summary["created_at"])
        with self._lock:
            held = self._items.get(name)
            if held is not None and held[0] == stamp:
                self._items.move_to_end(name)
                return held[1]
        layer = self._stores.layers.get(name)
        with self._lock:
            self._items[name] = (stamp, layer)
            self._items.move_to_end(name)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return layer
