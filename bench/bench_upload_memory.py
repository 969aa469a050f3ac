"""bench_upload_memory: the service's peak RSS while it takes a 30 MB plan-layer upload, for two code trees.

    python bench/bench_upload_memory.py [--root /work/main] [--root .] [--mb 30]

For each ``--root`` (e.g. the main branch as the baseline and this tree) it starts ``create_app()`` under
uvicorn in a subprocess (SpatiaLite in a temp dir, no in-process worker), uploads a GeoPackage of about
``--mb`` MB twice and reads the server's ``VmHWM`` (peak resident set) from /proc before and after:

* ``receive``: the upload with an unknown layer kind, refused only after the whole body is received
  (both trees check the kind after receiving the file), so the figure is the cost of taking the body;
* ``refused``: the same file with ``BLUEPRINT_LAYER_MAX_BYTES`` at a third of it (413 from the declared
  Content-Length, before the body is read);
* ``refused_chunked``: the same, sent chunked (no Content-Length), so the limit is counted while reading.

Beside the peak it prints what the server wrote to disk (``/proc/<pid>/io`` wchar).

The import itself (reading, reprojecting, storing) is the same code in both trees and is not measured
here (``bench_import.py``). Prints one JSON row per tree and step, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import httpx
from shapely.geometry import box

HERE = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_layer(path: Path, mb: float) -> Path:
    """Small squares with long attribute text, about ``mb`` MB as a GeoPackage."""
    n = int(mb * 1024**2 / 1100)
    x0, y0 = 560_000.0, 3_400_000.0
    geoms = [box(x0 + (i % 1000) * 30, y0 + (i // 1000) * 30, x0 + (i % 1000) * 30 + 20,
                 y0 + (i // 1000) * 30 + 20) for i in range(n)]
    gpd.GeoDataFrame({"fid_src": [f"F{i}" for i in range(n)], "note": ["农田保护说明" * 40] * n},
                     geometry=geoms, crs="EPSG:4548").to_file(path, driver="GPKG")
    return path


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def written_mb(pid: int) -> float:
    """Bytes the process has written with write() calls so far (/proc/<pid>/io wchar), in MB."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1]) / 1024**2
    raise RuntimeError("no wchar")


def measure(root: Path, layer: Path, step: str) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root), "BLUEPRINT_DATA_DIR": str(data),
           "BLUEPRINT_DEV_MODE": "true", "BLUEPRINT_WORKER_IN_PROCESS": "false",
           "BLUEPRINT_RATE_LIMITS_ENABLED": "false"}
    if step.startswith("refused"):
        env["BLUEPRINT_LAYER_MAX_BYTES"] = str(layer.stat().st_size // 3)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{base}/api/v1/layers", headers={"X-API-Key": "dev-admin-key"}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        before, wrote = vm_hwm_kb(proc.pid), written_mb(proc.pid)
        kind = "no_such_kind" if step == "receive" else "permanent_farmland"
        start = time.perf_counter()
        request = httpx.Request("POST", f"{base}/api/v1/layers", headers={"X-API-Key": "dev-admin-key"},
                                files={"file": (layer.name, layer.read_bytes())}, data={"kind": kind})
        if step == "refused_chunked":  # no Content-Length: the limit can only be counted while reading
            body = request.read()
            request = httpx.Request("POST", request.url, headers={
                "X-API-Key": "dev-admin-key", "Content-Type": request.headers["Content-Type"]},
                content=(body[i:i + 65536] for i in range(0, len(body), 65536)))
        with httpx.Client(timeout=600) as http:
            try:
                r = http.send(request)
                status = r.status_code
            except httpx.HTTPError as exc:  # the server may close while the client still sends
                status = type(exc).__name__
        seconds = time.perf_counter() - start
        after, wrote = vm_hwm_kb(proc.pid), written_mb(proc.pid) - wrote
    finally:
        proc.kill()
        proc.wait()
    return {"root": str(root), "step": step, "status": status, "disk_written_mb": round(wrote, 1),
            "upload_mb": round(layer.stat().st_size / 1024**2, 1),
            "peak_rss_before_mb": round(before / 1024, 1), "peak_rss_after_mb": round(after / 1024, 1),
            "peak_increase_mb": round((after - before) / 1024, 1), "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", action="append", type=Path, help="code tree to measure (repeatable)")
    parser.add_argument("--mb", type=float, default=30.0)
    args = parser.parse_args()
    roots = args.root or [HERE]
    with tempfile.TemporaryDirectory() as tmp:
        layer = make_layer(Path(tmp) / "farmland.gpkg", args.mb)
        for root in roots:
            for step in ("receive", "refused", "refused_chunked"):
                print(json.dumps(measure(root.resolve(), layer, step), ensure_ascii=False), flush=True)
    print(json.dumps({"loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
