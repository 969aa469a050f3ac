"""bench.bench_load: the service under load on loopback (uvicorn) — N concurrent httpx clients for T seconds.

Sets up a small published city in a fresh database (SpatiaLite by default, ``--database-url`` for
PostGIS), starts ``uvicorn api.app:create_app --factory`` in a child process, and runs a request mix
(screening checks, stored-result reads, project search, OGC items) from ``--clients`` concurrent
clients for ``--seconds``. Prints throughput, p50/p99 latency per operation and overall, and errors.

    .venv/bin/python -m bench.bench_load                      # 50 clients × 30 s, SpatiaLite
    .venv/bin/python -m bench.bench_load --clients 10 --seconds 5
    .venv/bin/python -m bench.bench_load --mix issue --health-baseline \
        --postgis postgresql://postgres@127.0.0.1:5432      # issue #16's goal run, scratch PostGIS database

The clock starts after the publish jobs are done and the shared httpx client exists; the server's CPU
seconds per request (from /proc) and the load average are printed beside the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
from shapely.geometry import box, mapping

X0, Y0 = 500_000.0, 3_420_000.0  # EPSG:4548 near the Tongling GK origin (as tests/geoms.py)
CITY = {  # kind → rectangle in metres from (X0, Y0)
    "city_boundary": (0, 0, 4000, 2000),
    "ecological_redline": (0, 0, 1000, 2000),
    "permanent_farmland": (1000, 0, 2200, 2000),
    "urban_boundary": (2000, 0, 4000, 2000),
}
CLIENT_KEEPALIVE_EXPIRY = 5.0  # seconds an idle pooled connection is reused (httpx's default)
MIX = (("check", 0.55), ("get_check", 0.2), ("search", 0.1), ("ogc_items", 0.1), ("locate", 0.05))
# issue #16's office at work: the approval system's single-parcel checks, QGIS reading OGC items pages,
# the review meeting's map tiles
MIXES = {"default": MIX,
         "issue": (("check", 0.7), ("ogc_items", 0.2), ("tile", 0.1)),
         "health": (("health", 1.0),)}


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The web-mercator tile (x, y) holding lon/lat at zoom z."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def rect(x0: float, y0: float, x1: float, y1: float) -> Any:
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def parcel_collection(rng: random.Random) -> dict[str, Any]:
    """One random 30–80 m parcel somewhere in the city, as GeoJSON (EPSG:4326)."""
    x, y, size = rng.uniform(50, 3900), rng.uniform(50, 1900), rng.uniform(30, 80)
    frame = gpd.GeoDataFrame({"parcel_id": ["1"]}, geometry=[rect(x, y, x + size, y + size)], crs="EPSG:4548")
    geom = frame.to_crs("EPSG:4326").geometry.iloc[0]
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"parcel_id": "1"}, "geometry": mapping(geom)}],
    }


def prepare(database_url: str, data_dir: Path) -> tuple[str, str]:
    """Build and publish the city, create keys; returns (admin key, approval-system key)."""
    from approval.audit import Principal
    from runtime.services import Services
    from runtime.settings import Settings

    settings = Settings(_env_file=None, database_url=database_url, data_dir=data_dir)  # type: ignore[call-arg]
    services = Services.open(settings)
    try:
        admin = Principal("bench", "admin")
        for kind, bounds in CITY.items():
            path = data_dir / f"{kind}.geojson"
            gpd.GeoDataFrame({"fid_src": ["1"]}, geometry=[rect(*bounds)], crs="EPSG:4548").to_crs(
                "EPSG:4326"
            ).to_file(path, driver="GeoJSON")
            services.upload_layer(path, kind, by=admin, name=kind)
        version = services.build(by=admin)["version"]
        services.publish(version, by=admin)
        admin_key = services.keys.create("bench admin", "admin")[0]
        approval_key = services.keys.create("bench approval", "approval_system")[0]
        for i in range(20):  # a few projects to search and locate
            from approval.pool import NewProject
            from layers.ingest import parcels_from_geojson

            parcels = parcels_from_geojson(parcel_collection(random.Random(i)), work_crs=settings.work_crs)
            services.create_project(
                NewProject(f"BENCH-{i:03d}", f"压测项目 {i}", "industrial", "bench", "铜官区"),
                parcels,
                by=admin,
            )
    finally:
        services.close()
    return admin_key, approval_key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_keep_alive() -> int:
    """The keep-alive `blueprint serve` would use here (the BLUEPRINT_KEEP_ALIVE_SECONDS setting)."""
    from runtime.settings import Settings

    return Settings(_env_file=None).keep_alive_seconds  # type: ignore[call-arg]


def start_server(database_url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BLUEPRINT_DATABASE_URL": database_url,
        "BLUEPRINT_DATA_DIR": str(data_dir),
        "BLUEPRINT_DEV_MODE": "false",
        # the benchmark measures the service, not the limiter: 50 clients on one key would be 429s
        # (set BLUEPRINT_RATE_LIMITS_ENABLED=true to measure with the limits on)
        "BLUEPRINT_RATE_LIMITS_ENABLED": os.environ.get("BLUEPRINT_RATE_LIMITS_ENABLED", "false"),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        # as `blueprint serve`: idle connections outlive the client pool's (BLUEPRINT_KEEP_ALIVE_SECONDS)
        "--timeout-keep-alive",
        str(server_keep_alive()),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}")
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    raise SystemExit("the server did not become ready within 60 s")


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the server and its worker processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    family, total = {pid}, 0.0
    while True:
        grown = family | {p for p, (ppid, _) in stats.items() if ppid in family}
        if grown == family:
            break
        family = grown
    for p in family:
        total += stats.get(p, (0, 0.0))[1]
    return total


def wait_for_jobs(database_url: str, timeout: float = 300.0) -> float:
    """Wait until the server's worker has finished the publish jobs (tile archive, re-screening): the
    load is measured on the service at rest, not beside a one-off build. Returns the seconds waited."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            with engine.connect() as conn:
                busy = conn.execute(sa.text(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")).scalar_one()
                if not busy:
                    break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return time.monotonic() - started


async def client_loop(
    client: httpx.AsyncClient,
    until: float,
    seed: int,
    samples: dict[str, list[float]],
    errors: dict[str, int],
    check_ids: list[str],
    pool: list[dict[str, Any]],
    mix: tuple[tuple[str, float], ...] = MIX,
    tiles: list[str] | None = None,
    kinds: dict[str, int] | None = None,
) -> None:
    rng = random.Random(seed)
    kinds = kinds if kinds is not None else defaultdict(int)
    ops, weights = zip(*mix, strict=True)
    # the clients share one httpx client, made before the clock starts (each new one builds an SSL context)
    while time.monotonic() < until:
        op = rng.choices(ops, weights)[0]
        if op == "get_check" and not check_ids:
            op = "check"
        start = time.perf_counter()
        try:
            if op == "check":
                response = await client.post(
                    "/api/v1/checks",
                    json={
                        "project_type": rng.choice(
                            ["industrial", "residential", "linear_infrastructure"]
                        ),
                        "parcels": rng.choice(pool),
                    },
                )
                if response.status_code == 201:
                    check_ids.append(response.json()["check_id"])
            elif op == "get_check":
                response = await client.get(f"/api/v1/checks/{rng.choice(check_ids)}")
            elif op == "search":
                response = await client.get(
                    "/api/v1/projects", params={"q": f"BENCH-0{rng.randint(0, 1)}"}
                )
            elif op == "ogc_items":
                response = await client.get(
                    "/ogc/collections/blueprint-v1-pieces/items",
                    params={"limit": 10, "offset": rng.randint(0, 3)},
                )
            elif op == "tile":
                response = await client.get(rng.choice(tiles or ["/health"]))
            elif op == "health":
                response = await client.get("/health")
            else:
                response = await client.get(f"/api/v1/projects/BENCH-{rng.randint(0, 19):03d}/location")
            ok = response.status_code < 400
            why = str(response.status_code)
        except httpx.HTTPError as exc:
            ok, why = False, type(exc).__name__
        elapsed = time.perf_counter() - start
        if ok:
            samples[op].append(elapsed)
        else:
            errors[op] += 1
            kinds[f"{op} {why}"] += 1  # what went wrong: the status, or the client's exception


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run_load(base: str, key: str, clients: int, seconds: float,
                   mix: tuple[tuple[str, float], ...] = MIX) -> dict[str, Any]:
    samples: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    check_ids: list[str] = []
    # parcels are made before the clock starts, so the clients spend their CPU on requests only
    pool = [parcel_collection(random.Random(10_000 + i)) for i in range(500)]
    corner = gpd.GeoSeries([rect(0, 0, 4000, 2000)], crs="EPSG:4548").to_crs("EPSG:4326").total_bounds
    tiles = sorted({f"/viewer/tiles/v1/{layer}/{z}/{x}/{y}.geojson"
                    for z in (13, 14, 15)
                    for layer in ("ecological_redline", "permanent_farmland", "conflicts")
                    for lon in (corner[0], (corner[0] + corner[2]) / 2, corner[2])
                    for lat in (corner[1], corner[3])
                    for x, y in [tile_of(lon, lat, z)]})
    # as a well-configured client: a pooled connection is dropped after 5 s idle (httpx's default, said
    # explicitly), well before the server's keep-alive; reusing one the server is just closing would fail
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients,
                          keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY)
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        started, cpu0 = time.monotonic(), time.process_time()
        until = started + seconds
        await asyncio.gather(
            *(client_loop(client, until, i, samples, errors, check_ids, pool, mix, tiles, kinds)
              for i in range(clients))
        )
        wall, client_cpu = time.monotonic() - started, time.process_time() - cpu0
    report: dict[str, Any] = {"clients": clients, "seconds": round(wall, 2), "operations": {},
                              "client_cpu_s": round(client_cpu, 1)}
    everything: list[float] = []
    for op, _weight in mix:
        values = samples.get(op, [])
        everything += values
        report["operations"][op] = {
            "ok": len(values),
            "errors": errors.get(op, 0),
            "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p99_ms": round(percentile(values, 99) * 1000, 1),
        }
    total_errors = sum(errors.values())
    report.update(
        requests=len(everything) + total_errors,
        errors=total_errors,
        error_kinds=dict(sorted(kinds.items())),
        throughput_rps=round(len(everything) / wall, 1),
        p50_ms=round(percentile(everything, 50) * 1000, 1),
        p99_ms=round(percentile(everything, 99) * 1000, 1),
    )
    return report


@contextlib.contextmanager
def scratch_postgis(server: str | None) -> Iterator[str | None]:
    """A fresh database on ``server`` for one run (None when no server is given), dropped afterwards."""
    if server is None:
        yield None
        return
    import sqlalchemy as sa

    name = f"bench_load_{os.getpid()}"
    server = server.rstrip("/").replace("postgresql://", "postgresql+psycopg2://", 1)
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--database-url", default=None, help="default: a fresh SpatiaLite file")
    parser.add_argument("--postgis", default=None, metavar="SERVER",
                        help="a scratch database on this PostGIS server (e.g. "
                        "postgresql://postgres@127.0.0.1:5432), created for the run and dropped after it")
    parser.add_argument("--mix", choices=sorted(MIXES), default="default",
                        help="issue = 70 %% checks, 20 %% OGC items pages, 10 %% viewer tiles")
    parser.add_argument("--health-baseline", action="store_true",
                        help="first run bare /health with the same clients and seconds, and print the ratios")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, scratch_postgis(args.postgis) as scratch:
        data_dir = Path(tmp)
        url = scratch or args.database_url or f"sqlite:///{data_dir / 'bench.sqlite'}"
        t0 = time.monotonic()
        _admin_key, approval_key = prepare(url, data_dir)
        print(
            f"setup: city published, 20 projects ({time.monotonic() - t0:.1f} s); backend "
            f"{url.split(':', 1)[0]}",
            file=sys.stderr,
        )
        port = free_port()
        server = start_server(url, data_dir, port, args.workers)
        try:
            waited = wait_for_jobs(url)
            print(f"publish jobs done after {waited:.1f} s; load average {os.getloadavg()[0]:.2f}",
                  file=sys.stderr)
            load_before = os.getloadavg()
            base = f"http://127.0.0.1:{port}"
            baseline = None
            if args.health_baseline:
                cpu0 = server_cpu_seconds(server.pid)
                baseline = asyncio.run(run_load(base, approval_key, args.clients, args.seconds,
                                                MIXES["health"]))
                baseline["server_cpu_s"] = round(server_cpu_seconds(server.pid) - cpu0, 1)
            cpu0 = server_cpu_seconds(server.pid)
            report = asyncio.run(run_load(base, approval_key, args.clients, args.seconds, MIXES[args.mix]))
            report["server_cpu_s"] = round(server_cpu_seconds(server.pid) - cpu0, 1)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    report["backend"] = url.split(":", 1)[0]
    report["keep_alive_s"] = {"server": server_keep_alive(), "client_pool": CLIENT_KEEPALIVE_EXPIRY}
    report["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}
    if baseline is not None:
        check = report["operations"].get("check", {})
        check_rps = check.get("ok", 0) / report["seconds"]
        report["health_baseline"] = {k: baseline[k] for k in ("throughput_rps", "p50_ms", "p99_ms", "errors",
                                                              "server_cpu_s")}
        report["check_vs_health"] = round(check_rps / baseline["throughput_rps"], 3)
        report["check_p99_over_p50"] = round(check.get("p99_ms", 0) / max(check.get("p50_ms", 1), 1e-9), 2)
    print(f"{'operation':<12}{'ok':>8}{'errors':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for op, row in report["operations"].items():
        print(f"{op:<12}{row['ok']:>8}{row['errors']:>8}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    print(
        f"total: {report['requests']} requests in {report['seconds']} s = {report['throughput_rps']} req/s, "
        f"p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, errors {report['errors']}"
        + (f" ({report['error_kinds']})" if report["errors"] else "")
    )
    if baseline is not None:
        print(f"/health alone: {baseline['throughput_rps']} req/s; check throughput / health throughput = "
              f"{report['check_vs_health']} (goal ≥ 0.25); check p99/p50 = {report['check_p99_over_p50']} "
              "(goal ≤ 10)")
    per_request = 1000 * report["server_cpu_s"] / max(report["requests"] - report["errors"], 1)
    health_cpu = "" if baseline is None else (
        f"; /health {baseline['server_cpu_s']} s "
        f"({1000 * baseline['server_cpu_s'] / max(1, baseline['requests']):.2f} ms per request)")
    print(f"server CPU: {report['server_cpu_s']} s for the mix ({per_request:.1f} ms per request), load "
          f"generator {report['client_cpu_s']} s{health_cpu}")
    print(f"load average (1, 5, 15 min) before {report['load_average']['before']}, after "
          f"{report['load_average']['after']} on {os.cpu_count()} CPUs")
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
