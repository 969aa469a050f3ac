"""Upload directories a killed server left behind are removed at start-up (issue #16 defect 13).

The fault test SIGKILLs a real server process in the middle of a streamed upload, checks its
``<data_dir>/uploads/blueprint-upload-<pid>-*`` directory is still there, starts an app and checks it
is gone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from api.tempfiles import PREFIX, sweep_upload_dirs
from api.uploads import uploads_root
from tests.api.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sweep_keeps_live_uploads_and_old_legacy_ones_go(tmp_path: Path) -> None:
    mine = tmp_path / f"{PREFIX}{os.getpid()}-abc"
    dead = tmp_path / f"{PREFIX}999999999-abc"
    legacy_old, legacy_new = tmp_path / f"{PREFIX}old", tmp_path / f"{PREFIX}new"
    for d in (mine, dead, legacy_old, legacy_new):
        d.mkdir()
        (d / "upload.zip").write_bytes(b"x" * 10)
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    assert set(sweep_upload_dirs(tmp_path)) == {dead, legacy_old}
    assert mine.exists() and legacy_new.exists()


def test_upload_dir_of_a_killed_server_is_removed_at_startup(tmp_path: Path) -> None:
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'b.sqlite'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLUEPRINT_DATABASE_URL": url,
           "BLUEPRINT_DATA_DIR": str(tmp_path), "BLUEPRINT_DEV_MODE": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        # a big parcel file (one polygon of 400,000 vertices): the server copies it into its upload
        # directory and reads it there for a second or two; it is killed in the middle of that
        ring = [[117.8 + 0.01 * math.cos(t), 30.9 + 0.01 * math.sin(t)]
                for t in (2 * math.pi * i / 400_000 for i in range(400_000))]
        ring.append(ring[0])
        data = json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                           "geometry": {"type": "Polygon", "coordinates": [ring]}}]}).encode()

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"http://127.0.0.1:{port}/api/v1/checks", headers={"X-API-Key": "dev-planner-key"},
                           data={"project_type": "industrial"}, files={"file": ("big.geojson", data)},
                           timeout=60)

        threading.Thread(target=upload, daemon=True).start()
        pattern = f"{PREFIX}{server.pid}-*"
        uploads = uploads_root(tmp_path)  # streamed into the data dir (api.uploads)
        deadline = time.monotonic() + 60
        while not list(uploads.glob(pattern)):
            assert time.monotonic() < deadline, "the server never made an upload directory"
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        left = list(uploads.glob(pattern))
        assert left, "SIGKILL leaves the directory behind"
    finally:
        if server.poll() is None:
            server.kill()
    app = create_app(settings_for(url, tmp_path))
    with TestClient(app):
        assert not any(p.exists() for p in left)
    app.state.services.close()
