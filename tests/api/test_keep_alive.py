"""`blueprint serve` keeps idle HTTP connections open longer than client pools keep them (issue #16).

uvicorn's default keep-alive is 5 s, the same as httpx's pool expiry: a pooled connection reused at
≈ 5 s of idleness could meet the server closing it, and that request failed with a reset (the
`check ReadError` of a quiet-box bench_load run). The server's keep-alive is a setting now.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cli import serve_cmd
from runtime.settings import Settings
from tests.serving import ROOT, free_port, wait_healthy

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_serve_passes_the_keep_alive_setting_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("BLUEPRINT_KEEP_ALIVE_SECONDS", "42")
    serve_cmd.serve(host="127.0.0.1", port=8000, workers=1)
    assert seen["timeout_keep_alive"] == 42


def test_default_keep_alive_outlasts_common_client_pools() -> None:
    # httpx keeps an idle pooled connection 5 s, aiohttp 15 s, a cloud load balancer 60 s
    assert Settings(_env_file=None).keep_alive_seconds > 60  # type: ignore[call-arg]


def read_response(sock: socket.socket) -> bytes:
    """One small HTTP/1.1 response (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_idle_connection_outlives_uvicorns_default_five_seconds(tmp_path: Path) -> None:
    """The real `blueprint serve` process: a connection idle for 6 s is still open and serves again."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLUEPRINT_DATA_DIR": str(tmp_path),
           "BLUEPRINT_DEV_MODE": "false"}
    env.pop("BLUEPRINT_DATABASE_URL", None)
    env.pop("BLUEPRINT_KEEP_ALIVE_SECONDS", None)
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", proc, 90), "blueprint serve did not start"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(6.0)  # idle past uvicorn's default keep-alive (5 s)
            readable, _, _ = select.select([sock], [], [], 0)
            assert not readable, "the server closed the idle connection (EOF waiting on the socket)"
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
