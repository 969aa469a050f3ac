"""A publish queues the version's MVT archive as a durable job; a worker builds it where the map reads it."""

from __future__ import annotations

import sqlalchemy as sa

from approval.worker import Worker
from tests.api.conftest import Api
from viewer.archive import archive_path


def test_publish_queues_the_tile_archive_and_a_worker_builds_it(fresh: Api, tmp_path) -> None:
    from tests.api.conftest import publish_city

    services = fresh.services
    services.stop_worker()  # run the job by hand, to watch it
    version = publish_city(fresh, tmp_path)
    with services.engine.connect() as conn:
        kinds = list(conn.execute(sa.text("SELECT kind FROM jobs WHERE status = 'queued'")).scalars())
    assert kinds.count("tiles") == 1
    worker = Worker(services.jobs, {"tiles": services.job_handlers()["tiles"]}, name="tiles-test")
    assert worker.run_once()
    archive = archive_path(services.settings.data_dir / "tiles", version)
    assert archive.is_file() and archive.stat().st_size > 0
    with services.engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status, result_id FROM jobs WHERE kind = 'tiles'")).one()
    assert tuple(status) == ("succeeded", f"tiles:{version}")
