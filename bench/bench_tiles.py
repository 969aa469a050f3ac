"""bench.bench_tiles: the review-meeting map in headless Chromium — requests, bytes and time, MVT vs GeoJSON.

Builds a synthetic city (``--farmland N`` merged by ``blueprint.merge``, demo-like at 2 500 ≈ 6k pieces;
or ``--direct N`` ≈ N pieces made without the merge), serves ``/viewer`` over it on loopback (uvicorn,
no auth, a stand-in for the four ``/api/v1`` project endpoints the page calls), then:

1. builds the version's MVT archive (``viewer.archive.build_version_tiles``): time, tiles, size, largest tile;
2. opens ``/viewer`` at 1600×1000 in a fresh browser context (cold) and again in the same context (warm):
   tile requests, bytes on the wire, seconds until every tile of the view is drawn;
3. flies to a project at the far side of the city: tile requests, bytes, seconds until panel and tiles;
4. baseline in the same run: the opening view's tiles asked for as today's per-layer GeoJSON tiles (one
   request per layer shown × view cell, 6 at a time like a browser), first on a cold server, then warm.

    .venv/bin/python -m bench.bench_tiles                    # demo-like city
    .venv/bin/python -m bench.bench_tiles --direct 1000000   # 10⁶ pieces
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import shapely
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pyproj import CRS
from shapely.geometry import mapping

from bench.bench_check import direct_blueprint, merged_blueprint
from layers.catalogue import load_catalogue
from layers.crs import OUTPUT_CRS
from viewer.archive import build_version_tiles
from viewer.page import DEFAULT_ON_GROUPS
from viewer.routes import build_router

CHROMIUM = os.environ.get("BLUEPRINT_CHROMIUM", "/usr/bin/chromium")
VIEW = {"width": 1600, "height": 1000}
CODE = "2026-340705-47-01-000777"


class BenchSource:
    """A ViewerSource over one published in-memory blueprint (version ``v1``)."""

    def __init__(self, pieces: gpd.GeoDataFrame, conflicts: gpd.GeoDataFrame) -> None:
        self._pieces, self._conflicts = pieces, conflicts

    def work_crs(self) -> CRS:
        return CRS.from_user_input(self._pieces.crs)

    def versions(self) -> list[dict[str, Any]]:
        return [{"version": "v1", "status": "published"}]

    def latest_version(self) -> str | None:
        return "v1"

    def pieces(self, version: str) -> gpd.GeoDataFrame:
        if version != "v1":
            raise KeyError(version)
        return self._pieces

    def conflicts(self, version: str) -> gpd.GeoDataFrame:
        if version != "v1":
            raise KeyError(version)
        return self._conflicts

    def city_bounds_4326(self) -> tuple[float, float, float, float]:
        w, s, e, n = self._pieces.to_crs(OUTPUT_CRS).total_bounds
        return float(w), float(s), float(e), float(n)

    def search_projects(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        return []

    def public_projects(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    def check(self, check_id: str) -> dict[str, Any] | None:
        return None

    def project_for_check(self, check_id: str) -> dict[str, Any] | None:
        return None


def make_app(source: BenchSource, tiles_dir: Path, wire: dict[str, int]) -> FastAPI:
    """The viewer router, a byte counter, and the project endpoints for one project near a city corner."""
    app = FastAPI()
    app.include_router(build_router(source, lambda: None, tiles_dir=tiles_dir))
    w, s, e, n = source.city_bounds_4326()
    lon, lat = w + (e - w) * 0.85, s + (n - s) * 0.15
    parcel = shapely.box(lon - 0.003, lat - 0.002, lon + 0.003, lat + 0.002)

    @app.middleware("http")
    async def count_bytes(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if "/viewer/tiles/" in request.url.path:
            size = int(response.headers.get("content-length", 0))
            wire["bytes"] = wire.get("bytes", 0) + size
            wire["largest"] = max(wire.get("largest", 0), size)
            wire["served"] = wire.get("served", 0) + 1  # asked of the server (not from the browser cache)
        return response

    project = {"code": CODE, "name": "基准测试园区", "project_type": "industrial", "status": "submitted",
               "applicant": "-", "district": "-"}

    @app.get("/api/v1/projects")
    def projects(q: str = "") -> dict[str, Any]:
        return {"items": [project] if q and q in CODE else []}

    @app.get("/api/v1/projects/{code}")
    def one(code: str) -> dict[str, Any]:
        if code != CODE:
            raise HTTPException(404)
        return project

    @app.get("/api/v1/projects/{code}/location")
    def location(code: str) -> dict[str, Any]:
        return {"code": code, "bbox": list(parcel.bounds), "geometry": mapping(parcel),
                "centroid": [lon, lat]}

    return app


def serve(app: FastAPI) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def tile_requests(urls: list[str]) -> list[str]:
    return [u for u in urls if "/viewer/tiles/" in u]


def open_view(page: Any, base: str, wire: dict[str, int]) -> dict[str, Any]:
    """Open /viewer and wait until every tile of the view is drawn: requests, bytes, seconds."""
    seen: list[str] = []

    def record(request: Any) -> None:
        seen.append(request.url)

    page.on("request", record)
    wire["bytes"] = wire["served"] = 0
    t0 = time.perf_counter()
    page.goto(f"{base}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.tilesIdle === true", timeout=600_000)
    seconds = time.perf_counter() - t0
    page.remove_listener("request", record)
    tiles = tile_requests(seen)
    return {"requests": len(seen), "tile_requests": len(tiles), "served": wire["served"], "tiles": tiles,
            "bytes": wire["bytes"],
            "seconds": seconds, "outside": [u for u in seen if not u.startswith(base)]}


def fly(page: Any, wire: dict[str, int]) -> dict[str, Any]:
    """Search the project: the map flies there; until panel shown and the new view's tiles drawn."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    wire["bytes"] = wire["served"] = 0
    t0 = time.perf_counter()
    page.fill("#ob-search", CODE)
    page.press("#ob-search", "Enter")
    page.wait_for_function("OneBlueprint.state === 'located'", timeout=600_000)
    page.wait_for_timeout(1000)  # the flight (0.8 s)
    page.wait_for_function("OneBlueprint.tilesIdle === true", timeout=600_000)
    return {"requests": len(seen), "tile_requests": len(tile_requests(seen)), "served": wire["served"],
            "bytes": wire["bytes"], "seconds": time.perf_counter() - t0,
            "panel": page.locator("#ob-panel").get_attribute("data-code")}


def geojson_baseline(base: str, tiles: list[str], layers: list[str]) -> dict[str, Any]:
    """Today's per-layer GeoJSON tiles for the same view cells, 6 requests at a time (a browser's limit)."""
    urls = []
    for url in tiles:  # a 512-px MVT cell (z, x, y) is the old client's four 256-px tiles at zoom z + 1
        z, x, y = (int(v) for v in url.split("?")[0][:-4].rsplit("/", 3)[1:])
        urls += [f"{base}/viewer/tiles/v1/{layer}/{z + 1}/{2 * x + dx}/{2 * y + dy}.geojson"
                 for layer in layers for dx in (0, 1) for dy in (0, 1)]
    sizes: list[int] = []
    t0 = time.perf_counter()
    with httpx.Client(timeout=600, headers={"Accept-Encoding": "identity"}) as http:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            sizes = list(pool.map(lambda u: len(http.get(u).content), urls))
    return {"requests": len(urls), "bytes": sum(sizes), "seconds": time.perf_counter() - t0,
            "largest": max(sizes, default=0)}


def archive_stats(path: Path) -> dict[str, Any]:
    import sqlite3

    with sqlite3.connect(path) as db:
        n, largest = db.execute("SELECT count(*), max(length(tile_data)) FROM tiles").fetchone()
        biggest = db.execute("SELECT tile_data FROM tiles ORDER BY length(tile_data) DESC LIMIT 1").fetchone()
    raw = len(gzip.decompress(biggest[0])) if biggest else 0
    return {"tiles": n, "size": path.stat().st_size, "largest_gzip": largest or 0, "largest_raw": raw}


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--farmland", type=int, default=2500, help="merged synthetic city (default: demo-like)")
    ap.add_argument("--direct", type=int, default=0, help="≈ N pieces, no merge (e.g. 1000000)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the GeoJSON baseline")
    args = ap.parse_args(argv)
    load0 = load()
    t0 = time.perf_counter()
    bp = direct_blueprint(args.direct) if args.direct else merged_blueprint(args.farmland)
    print(f"city: {len(bp.pieces)} pieces, {len(bp.conflicts)} conflicts, made in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    source = BenchSource(bp.pieces, bp.conflicts)
    catalogue = load_catalogue()
    on = [k.key for k in catalogue.values() if k.group in DEFAULT_ON_GROUPS]
    tiles_dir = Path(tempfile.mkdtemp(prefix="bench_tiles_"))
    wire: dict[str, int] = {}
    base, server, thread = serve(make_app(source, tiles_dir, wire))
    try:
        la = load()
        t0 = time.perf_counter()
        groups = {k.key: k.group for k in catalogue.values()}
        path = build_version_tiles(source, "v1", tiles_dir, groups=groups)
        build = time.perf_counter() - t0
        stats = archive_stats(path)
        print(f"archive (z6–14): {build:.1f} s, {stats['tiles']} tiles, {stats['size'] / 1e6:.1f} MB, "
              f"largest tile "
              f"{stats['largest_gzip'] / 1e3:.0f} kB gzip ({stats['largest_raw'] / 1e3:.0f} kB raw); "
              f"load {la}→{load()}", flush=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            context = browser.new_context(viewport=VIEW)
            # any key passes the bench's auth; the page only wants to see one before it renders
            context.add_cookies([{"name": "blueprint_key", "value": "bench", "url": base}])
            page = context.new_page()
            la = load()
            cold = open_view(page, base, wire)
            warm = open_view(page, base, wire)
            flight = fly(page, wire)
            browser.close()
        la2 = load()
        for name, r in (("open, cold", cold), ("open, warm (browser cache)", warm), ("fly-to", flight)):
            print(f"MVT   {name:28s} {r['requests']:4d} requests ({r['tile_requests']} tiles, "
                  f"{r['served']} reached the server), "
                  f"{r['bytes'] / 1e6:6.2f} MB tiles, {r['seconds']:6.2f} s", flush=True)
        print(f"      fly-to panel shows {flight['panel']}; requests outside localhost: {cold['outside']}; "
              f"load {la}→{la2}")
        if not args.no_baseline:
            la = load()
            first = geojson_baseline(base, cold["tiles"], on)
            second = geojson_baseline(base, cold["tiles"], on)
            for name, r in (("same view, cold server", first), ("same view, warm server", second)):
                print(f"GeoJSON {name:26s} {r['requests']:4d} requests, {r['bytes'] / 1e6:6.2f} MB, "
                      f"{r['seconds']:6.2f} s, largest {r['largest'] / 1e3:.0f} kB", flush=True)
            print(f"      load {la}→{load()}")
        print(f"load average: {load0} at start, {load()} at end")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
