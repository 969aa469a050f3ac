"""A real uvicorn server on 127.0.0.1 for browser and client tests (one helper, not one copy per module)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pyproj import CRS

from layers.crs import OUTPUT_CRS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Poll ``base``/health until it answers 200 (True) or ``proc`` exits or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@contextmanager
def serving(app: Any, *, startup_seconds: float = 60.0) -> Iterator[str]:
    """Serve ``app`` (lifespan included) on a free loopback port; yields the base URL, stops on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_seconds
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def publish_layers(base: str, admin_key: str, layers: dict[str, Any], crs: CRS, tmp: Any) -> str:
    """Upload one GeoJSON layer per kind (a geometry: one feature; a GeoDataFrame in ``crs``: its
    features with their attributes), build a draft and publish it, all over HTTP; the published version."""
    import geopandas as gpd
    import httpx

    with httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": admin_key}) as http:
        for kind, geom in layers.items():
            path = tmp / f"{kind}.geojson"
            frame = geom if isinstance(geom, gpd.GeoDataFrame) else gpd.GeoDataFrame(
                {"fid_src": ["1"]}, geometry=[geom], crs=crs)
            frame.to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
            with path.open("rb") as fh:
                r = http.post("/api/v1/layers", data={"kind": kind, "name": kind},
                              files={"file": (path.name, fh, "application/geo+json")})
            assert r.status_code == 201, r.text
        r = http.post("/api/v1/blueprints", json={})
        assert r.status_code == 201, r.text
        version = str(r.json()["version"])
        r = http.post(f"/api/v1/blueprints/{version}/publish")
        assert r.status_code == 200, r.text
    return version



ROOT = Path(__file__).resolve().parents[1]


class ServerProcess:
    """``tests/fault_server.py`` (create_app under uvicorn) in a process of its own, to be SIGKILLed."""

    def __init__(self, env: dict[str, str], *, startup_seconds: float = 60.0) -> None:
        self.log = tempfile.TemporaryFile()  # a pipe nobody reads could fill up and stall the server
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_server", str(self.port)], cwd=ROOT,  # not a path: tests/ on
            # sys.path would shadow the approval package with tests/approval
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.DEVNULL, stderr=self.log)
        if not wait_healthy(self.base, self.proc, startup_seconds):
            self.kill()
            raise AssertionError(f"the server did not start: {self.stderr()}")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no rollback but the database's own."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.kill()
