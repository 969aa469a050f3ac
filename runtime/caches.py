"""runtime.caches: published blueprints with their Screeners, and stored layers, held in memory."""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blueprint.model import Blueprint
from checks.conditions import load_compatibility
from checks.engine import Screener
from checks.rules import Rules
from layers.catalogue import Catalogue
from layers.model import PlanLayer
from runtime import screener_files
from runtime.errors import require_published
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
    building the same STRtree twice. With a ``folder`` (the data dir's ``screeners/``), a built Screener
    is also written there and later processes read it from that file instead of building it.
    """

    def __init__(
        self,
        stores: Stores,
        rules: Rules,
        catalogue: Catalogue,
        settings: Settings,
        size: int = CACHED_VERSIONS,
        folder: Path | None = None,
    ) -> None:
        self._stores, self._rules, self._catalogue, self._settings = stores, rules, catalogue, settings
        self._size = size
        # (blueprint, screener): either may be missing (a screener read from its file has no blueprint)
        self._items: OrderedDict[str, tuple[Blueprint | None, Screener | None]] = OrderedDict()
        self._folder = folder
        self._inputs: bytes | None = None
        self._lock = threading.Lock()
        self._version_locks: dict[str, threading.RLock] = {}

    def blueprint(self, version: str) -> Blueprint:
        """A published blueprint from the cache; drafts are read fresh (they may be replaced)."""
        with self._lock:
            held = self._items.get(version)
            if held is not None and held[0] is not None:
                self._items.move_to_end(version)
                return held[0]
            version_lock = self._version_locks.setdefault(version, threading.RLock())
        with version_lock:  # re-entrant: screener() holds it while it calls this
            with self._lock:
                held = self._items.get(version)
                if held is not None and held[0] is not None:
                    return held[0]
            blueprint = self._stores.blueprints.get(version)
            if blueprint.status == "published":
                self._put(version, blueprint=blueprint)
            return blueprint

    def screener(self, version: str) -> Screener:
        with self._lock:
            held = self._items.get(version)
            if held is not None and held[1] is not None:
                self._items.move_to_end(version)
                return held[1]
            version_lock = self._version_locks.setdefault(version, threading.RLock())
        with version_lock:
            with self._lock:
                held = self._items.get(version)
                if held is not None and held[1] is not None:
                    return held[1]
            screener = self._stored_screener(version) or self._build(version)
            self._put(version, screener=screener)
            return screener

    def _stored_screener(self, version: str) -> Screener | None:
        """The version's Screener from its file in the data dir (see :mod:`runtime.screener_files`): a
        new worker process screens after reading one file instead of the pieces and an STRtree build.
        Only a published version has a file; the summary (one row) says whether it still is."""
        if self._folder is None:
            return None
        summary = self._stores.blueprints.summary(version)
        require_published(version, summary["status"])
        path = self._file(version, summary)
        return screener_files.load(path)

    def _build(self, version: str) -> Screener:
        blueprint = self.blueprint(version)
        require_published(version, blueprint.status)
        screener = Screener(
            blueprint,
            self._rules,
            self._catalogue,
            tolerance_m2=self._settings.overlap_tolerance_m2,
            tolerance_ratio=self._settings.overlap_tolerance_ratio,
            compatibility=load_compatibility(self._settings.land_use_compat_file),
        )
        if self._folder is not None:
            screener_files.save(self._file(version, self._stores.blueprints.summary(version)), screener)
        return screener

    def _file(self, version: str, summary: dict[str, Any]) -> Path:
        assert self._folder is not None
        if self._inputs is None:  # what else the Screener is built from, pickled once per process
            compat = self._settings.land_use_compat_file
            self._inputs = pickle.dumps((self._rules, self._catalogue, self._settings.overlap_tolerance_m2,
                                         self._settings.overlap_tolerance_ratio,
                                         Path(compat).read_bytes() if compat else None))
        return screener_files.path_for(self._folder, version,
                                       screener_files.fingerprint(version, summary, self._inputs))

    def _put(self, version: str, *, blueprint: Blueprint | None = None,
             screener: Screener | None = None) -> None:
        """Hold what was loaded (keeping what is held already), the version as most recently used."""
        with self._lock:
            held = self._items.get(version, (None, None))
            self._items[version] = (blueprint or held[0], screener or held[1])
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
