"""A check queued as a job screens the parcels exactly as read: what the reader knew beyond the frame
(a 部标 file's declared zone) survives the job's stored input."""

from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd

from layers.bubiao import write_bubiao
from tests.api.conftest import JOB_THRESHOLD, Api, rect


def _bubiao_file(tmp_path: Path, count: int) -> bytes:
    geoms = [rect(1010 + (i % 20) * 40, 10 + (i // 20) * 40, 1040 + (i % 20) * 40, 40 + (i // 20) * 40)
             for i in range(count)]
    frame = gpd.GeoDataFrame({"parcel_id": [f"D{i}" for i in range(count)]}, geometry=geoms, crs=4548)
    return write_bubiao(frame, tmp_path / "parcels.txt").read_bytes()


def _screen(city: Api, body: bytes) -> tuple[int, dict]:
    r = city.post("planner", "/api/v1/checks", data={"project_type": "industrial"},
                  files={"file": ("parcels.txt", body, "text/plain")})
    return r.status_code, r.json()


def _zones_chosen_by(result: dict) -> set[str]:
    return {p["plane_zone"]["chosen_by"] for p in result["parcels"]}


def test_a_queued_bubiao_check_keeps_the_files_declared_zone(city: Api, tmp_path: Path) -> None:
    status, small = _screen(city, _bubiao_file(tmp_path, 2))
    assert status == 201 and _zones_chosen_by(small) == {"declared"}, small  # screened on the spot

    status, job = _screen(city, _bubiao_file(tmp_path, JOB_THRESHOLD + 2))
    assert status == 202, job
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = city.get("approval_system", f"/api/v1/jobs/{job['job_id']}").json()
    assert job["status"] == "succeeded", job
    result = city.get("approval_system", job["result"]).json()
    assert len(result["parcels"]) == JOB_THRESHOLD + 2
    assert _zones_chosen_by(result) == {"declared"}  # was "centroid": the job dropped the declared zone
