"""The default version is the one published last, not the highest number (issue #16 defect 12)."""

from __future__ import annotations

import sqlalchemy as sa

from blueprint.store import BlueprintStore
from tests.storage.helpers import blueprint


def test_publishing_an_older_draft_makes_it_the_default(engine: sa.Engine) -> None:
    """`blueprint publish --help`: "it becomes immutable and the default for checks"."""
    store = BlueprintStore(engine)
    store.save_draft(blueprint("v1"))
    store.save_draft(blueprint("v2"))
    store.publish("v2", by="admin")
    assert store.latest_published_version() == "v2"
    store.publish("v1", by="admin")  # e.g. v2 turned out wrong and v1 is re-confirmed
    assert store.latest_published_version() == "v1"
    assert store.latest_published().version == "v1"
