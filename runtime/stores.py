"""runtime.stores: the migrated database and its stores (layers, blueprints, checks) on one engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from blueprint.store import BlueprintStore
from checks.store import CheckStore
from layers.store import LayerStore
from runtime.db import open_database
from runtime.settings import Settings


@dataclass(frozen=True)
class Stores:
    """The engine and one store per aggregate, all on the same engine."""

    engine: Engine
    layers: LayerStore
    blueprints: BlueprintStore
    checks: CheckStore

    @classmethod
    def on(cls, engine: Engine) -> Stores:
        """Stores on an engine that is already migrated."""
        return cls(engine=engine, layers=LayerStore(engine), blueprints=BlueprintStore(engine),
                   checks=CheckStore(engine))

    def close(self) -> None:
        self.engine.dispose()


def open_stores(settings: Settings) -> Stores:
    """Open (and migrate) the database the settings point at."""
    return Stores.on(open_database(settings))
