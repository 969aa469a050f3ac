"""cli.context: the migrated database and its stores, opened once per command (the service's own wiring)."""

from __future__ import annotations

from api.stores import Stores, open_stores

__all__ = ["Stores", "open_stores"]
