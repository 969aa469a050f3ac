"""blueprint.tasks: run a partitioned build's batch tasks on threads in process or as dask tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from blueprint.errors import BlueprintError

# run(task, plan, [args...], on_done(count)) → [task(plan, *args) for each args], in the order given
Runner = Callable[[Callable[..., Any], Any, Sequence[tuple[Any, ...]], Callable[[int], None]], list[Any]]


class SchedulerError(BlueprintError):
    """The dask scheduler named for the build cannot be reached."""

    code = "dask_scheduler_unreachable"


def local_runner(workers: int = 2) -> Runner:
    """Tasks on ``workers`` threads of this process (shapely releases the GIL in GEOS calls)."""

    def run(task: Callable[..., Any], plan: Any, jobs: Sequence[tuple[Any, ...]],
            on_done: Callable[[int], None]) -> list[Any]:
        out = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for done, result in enumerate(pool.map(lambda args: task(plan, *args), jobs), start=1):
                out.append(result)
                on_done(done)
        return out

    return run


def client_runner(client: Any) -> Runner:
    """Tasks on a dask.distributed ``client``: the plan is sent to every worker once."""
    from dask.distributed import as_completed

    def run(task: Callable[..., Any], plan: Any, jobs: Sequence[tuple[Any, ...]],
            on_done: Callable[[int], None]) -> list[Any]:
        # unhashed: a second run scattering an equal plan must not share (and release) the first's key
        shared = client.scatter(plan, broadcast=True, hash=False)
        futures = [client.submit(task, shared, *args, pure=False) for args in jobs]
        for done, _future in enumerate(as_completed(futures), start=1):
            on_done(done)
        return list(client.gather(futures))

    return run


@contextmanager
def dask_runner(scheduler: str | None = None, workers: int = 2, *, processes: bool = True,
                threads_per_worker: int = 1, connect_timeout: str = "15s") -> Iterator[Runner]:
    """A runner on the dask scheduler at ``scheduler`` (e.g. tcp://host:8786; the workers must see the
    build's data directory), or on a fresh LocalCluster of ``workers`` workers."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except OSError as exc:
            raise SchedulerError(
                f"cannot reach the dask scheduler at {scheduler} ({exc}); start one (`dask scheduler`, and "
                "`dask worker <address>` on machines that see the data directory) or build on a local "
                "cluster with --workers N") from exc
        with client:
            yield client_runner(client)
        return
    with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=processes,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client_runner(client)
