"""bench.bench_tiles: the review-meeting map in headless Chromium — requests, bytes and time, MVT vs GeoJSON.

Builds a synthetic city (``--farmland N`` merged by ``blueprint.merge``, demo-like at 2 500 ≈ 6k pieces;
or ``--direct N`` ≈ N pieces made without the merge), serves ``/viewer`` over it on loopback (uvicorn,
no auth, a stand-in for the four ``/api/v1`` project endpoints the page calls), then:

1. builds the version's MVT archive (``viewer.archive.build_version_tiles``): time, tiles, size, largest tile;
2. for each client — this tree's MVT client, and the GeoJSON client of ``BASELINE_COMMIT`` (its viewer.js
   swapped in by Playwright routing, on a server of its own), both in the same run at 1600×1000 — opens
   ``/viewer`` on a cold server, flies to a project at one corner, then the other, opens again in an empty
   browser context (warm server) and once more in that context (browser cache): requests, tile requests,
   how many reached the server, tile bytes on the wire, seconds until the last tile arrived.

    .venv/bin/python -m bench.bench_tiles                    # demo-like city
    .venv/bin/python -m bench.bench_tiles --direct 1000000   # 10⁶ pieces
"""

from __future__ import annotations

import argparse
import functools
import gzip
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pyproj import CRS, Transformer
from shapely.geometry import mapping

from bench.bench_check import direct_blueprint, merged_blueprint
from layers.catalogue import load_catalogue
from layers.crs import OUTPUT_CRS
from viewer.archive import build_version_tiles
from viewer.routes import build_router

CHROMIUM = os.environ.get("BLUEPRINT_CHROMIUM", "/usr/bin/chromium")
VIEW = {"width": 1600, "height": 1000}
CODE, CODE2 = "2026-340705-47-01-000777", "2026-340705-47-01-000778"
OUT = Path(__file__).resolve().parent / "out"  # screenshots (gitignored)


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

    @functools.cached_property
    def _bounds(self) -> tuple[float, float, float, float]:
        to_84 = Transformer.from_crs(self._pieces.crs, OUTPUT_CRS, always_xy=True)
        w, s, e, n = to_84.transform_bounds(*self._pieces.total_bounds)
        return float(w), float(s), float(e), float(n)

    def city_bounds_4326(self) -> tuple[float, float, float, float]:
        return self._bounds  # as the API's source does: the extent's corners, not every piece reprojected

    def search_projects(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        return []

    def public_projects(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    def check(self, check_id: str) -> dict[str, Any] | None:
        return None

    def project_for_check(self, check_id: str) -> dict[str, Any] | None:
        return None


def make_app(source: BenchSource, tiles_dir: Path | None, wire: dict[str, int]) -> FastAPI:
    """The viewer router, a byte counter, and the project endpoints for one project near a city corner."""
    app = FastAPI()
    app.include_router(build_router(source, lambda: None, tiles_dir=tiles_dir))
    w, s, e, n = source.city_bounds_4326()
    # two projects at opposite corners of the city: the first flight goes to one, the second to the other
    parcels = {}
    for code, fx, fy in ((CODE, 0.85, 0.15), (CODE2, 0.2, 0.8)):
        lon, lat = w + (e - w) * fx, s + (n - s) * fy
        parcels[code] = shapely.box(lon - 0.003, lat - 0.002, lon + 0.003, lat + 0.002)

    @app.middleware("http")
    async def count_bytes(request: Request, call_next: Any) -> Any:
        tile = "/viewer/tiles/" in request.url.path
        wire["inflight"] = wire.get("inflight", 0) + tile
        try:
            response = await call_next(request)
        finally:
            wire["inflight"] -= tile
        if tile:
            size = int(response.headers.get("content-length", 0))
            wire["bytes"] = wire.get("bytes", 0) + size
            wire["largest"] = max(wire.get("largest", 0), size)
            wire["served"] = wire.get("served", 0) + 1  # asked of the server (not from the browser cache)
        return response

    def project(code: str) -> dict[str, Any]:
        return {"code": code, "name": "基准测试园区", "project_type": "industrial", "status": "submitted",
                "applicant": "-", "district": "-"}

    @app.get("/api/v1/projects")
    def projects(q: str = "") -> dict[str, Any]:
        return {"items": [project(c) for c in parcels if q and q in c]}

    @app.get("/api/v1/projects/{code}")
    def one(code: str) -> dict[str, Any]:
        if code not in parcels:
            raise HTTPException(404)
        return project(code)

    @app.get("/api/v1/projects/{code}/location")
    def location(code: str) -> dict[str, Any]:
        if code not in parcels:
            raise HTTPException(404)
        parcel = parcels[code]
        return {"code": code, "bbox": list(parcel.bounds), "geometry": mapping(parcel),
                "centroid": list(parcel.centroid.coords[0])}

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


class Client:
    """One of the two map clients in a browser context: ``mvt`` (this tree) or ``geojson`` (the viewer.js
    of BASELINE_COMMIT, one GeoJSON tile per layer and cell, swapped in with Playwright's routing)."""

    def __init__(self, browser: Any, base: str, kind: str, wire: dict[str, int]) -> None:
        self.base, self.kind, self.wire = base, kind, wire
        self.context = browser.new_context(viewport=VIEW)
        # any key passes the bench's auth; the page only wants to see one before it renders
        self.context.add_cookies([{"name": "blueprint_key", "value": "bench", "url": base}])
        if kind == "geojson":
            old_js = baseline_script()
            self.context.route("**/viewer/static/viewer.js",
                               lambda route: route.fulfill(body=old_js, content_type="text/javascript"))
            self.context.route(f"{base}/viewer", self._old_config)
        self.page = self.context.new_page()
        self.finished: list[tuple[float, str]] = []
        self.page.on("requestfinished", lambda r: self.finished.append((time.perf_counter(), r.url)))

    def _old_config(self, route: Any) -> None:
        response = route.fetch()
        body = response.text().replace(MVT_TEMPLATE, GEOJSON_TEMPLATE)
        route.fulfill(response=response, body=body)

    def _measure(self, act: Any, wait: str) -> dict[str, Any]:
        seen: list[str] = []

        def record(request: Any) -> None:
            seen.append(request.url)

        self._server_quiet()
        self.page.on("request", record)
        self.wire["bytes"] = self.wire["served"] = 0
        self.finished.clear()
        t0 = time.perf_counter()
        act()
        self.page.wait_for_function(wait, timeout=900_000)
        self.page.wait_for_timeout(1200)  # a flight lasts 0.8 s; the MVT client loads when it ends
        self.page.wait_for_load_state("networkidle", timeout=900_000)
        self._server_quiet()
        self.page.remove_listener("request", record)
        done = [t for t, u in self.finished if "/viewer/tiles/" in u]
        tiles = tile_requests(seen)
        return {"requests": len(seen), "tile_requests": len(tiles), "served": self.wire["served"],
                "bytes": self.wire["bytes"], "seconds": (max(done) - t0) if done else 0.0,
                "outside": [u for u in seen if not u.startswith(self.base)]}

    def _server_quiet(self) -> None:
        """Wait until the server has answered every tile asked of it (an earlier page's included)."""
        deadline = time.monotonic() + 900
        while self.wire.get("inflight", 0) > 0 and time.monotonic() < deadline:
            self.page.wait_for_timeout(100)  # not time.sleep: Playwright's sync API delivers events only here
        self.page.wait_for_timeout(300)  # the browser's events about those answers, delivered now

    def open(self) -> dict[str, Any]:
        """Open /viewer: until the last tile of the view has arrived."""
        return self._measure(lambda: self.page.goto(f"{self.base}/viewer"),
                             "window.OneBlueprint && OneBlueprint.state === 'ready'")

    def fly(self, code: str) -> dict[str, Any]:
        """Search a project: the map flies there; until the panel is shown and the last tile has arrived."""
        def act() -> None:
            self.page.fill("#ob-search", code)
            self.page.press("#ob-search", "Enter")

        result = self._measure(act, "OneBlueprint.state === 'located'")
        result["panel"] = self.page.locator("#ob-panel").get_attribute("data-code")
        return result


MVT_TEMPLATE = "/viewer/tiles/{version}/{z}/{x}/{y}.mvt"
GEOJSON_TEMPLATE = "/viewer/tiles/{version}/{layer}/{z}/{x}/{y}.geojson"
BASELINE_COMMIT = "dc9830c"  # main before issue 12: the GeoJSON client (one canvas GridLayer per layer)


def baseline_script() -> str:
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:viewer/static/viewer.js"], cwd=repo,
                         capture_output=True, text=True, check=True)
    return out.stdout


def show(rows: list[tuple[str, dict[str, Any]]], name: str, r: dict[str, Any]) -> None:
    rows.append((name, r))
    print(f"{name:32s} {r['requests']:4d} requests, {r['tile_requests']:4d} tiles "
          f"({r['served']:4d} reached the server), {r['bytes'] / 1e6:6.2f} MB tiles, "
          f"last tile after {r['seconds']:6.2f} s" + (f", panel {r['panel']}" if "panel" in r else ""),
          flush=True)


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
    tiles_dir = Path(tempfile.mkdtemp(prefix="bench_tiles_"))
    aborted = 0
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
    rows: list[tuple[str, dict[str, Any]]] = []
    kinds = ["mvt"] if args.no_baseline else ["mvt", "geojson"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        OUT.mkdir(exist_ok=True)
        for kind in kinds:
            # a fresh server per client: nothing cached but what a publish would have built
            wire: dict[str, int] = {}
            base, server, thread = serve(make_app(source, tiles_dir if kind == "mvt" else None, wire))
            try:
                la = load()
                first = Client(browser, base, kind, wire)
                show(rows, f"{kind} open, cold server", first.open())
                first.page.screenshot(path=str(OUT / f"bench-tiles-{kind}-city.png"))
                show(rows, f"{kind} fly-to 1", first.fly(CODE))
                first.page.screenshot(path=str(OUT / f"bench-tiles-{kind}-fly.png"))
                show(rows, f"{kind} fly-to 2 (other corner)", first.fly(CODE2))
                second = Client(browser, base, kind, wire)  # empty browser cache, warm server
                show(rows, f"{kind} open, warm server", second.open())
                show(rows, f"{kind} reopen (browser cache)", second.open())
                if kind == "mvt":
                    aborted = first.page.evaluate("OneBlueprint.aborted || 0")
                print(f"      {kind}: load {la}→{load()}", flush=True)
            finally:
                server.should_exit = True
                thread.join(timeout=10)
        browser.close()
    print(f"tile loads cancelled by the MVT client's flights: {aborted}; requests outside localhost: "
          f"{sorted({u for _, r in rows for u in r['outside']})}")
    print(f"load average: {load0} at start, {load()} at end")


if __name__ == "__main__":
    main()
