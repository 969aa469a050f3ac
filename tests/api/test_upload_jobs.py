"""Streamed layer uploads and their import jobs; builds as jobs (issue #16 item 2).

An upload is written to ``<data_dir>/uploads`` as it arrives, refused with a 413 naming the limit as
soon as it passes it (nothing left on disk); above ``layer_job_bytes`` (or with ``Prefer:
respond-async``) the import is a durable job whose progress says features read / total and chunk n of
m, and whose input folder goes when it ends. On SpatiaLite and PostGIS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient

import layers.stream
from api.app import create_app
from api.uploads import uploads_root
from approval.worker import Worker
from tests.api.conftest import LAYERS, Api, make_keys, rect, settings_for, write_layer
from tests.api.test_service import assert_error

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def quiet(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """An empty app without a worker of its own (a test runs the jobs), small plan-layer limits."""
    app = create_app(settings_for(db_url, tmp_path, worker_in_process=False, layer_max_bytes=600_000,
                                  layer_job_bytes=300_000))
    with TestClient(app) as client:
        yield Api(app, client, make_keys(app.state.services))
    app.state.services.close()


def patches(tmp: Path, n: int) -> Path:
    """``n`` small farmland squares in a GeoPackage (read in chunks by layers.stream)."""
    path = tmp / "farmland.gpkg"
    geoms = [rect(500 + (i % 30) * 20, (i // 30) * 20, 510 + (i % 30) * 20, 10 + (i // 30) * 20)
             for i in range(n)]
    gpd.GeoDataFrame({"fid_src": [f"F{i}" for i in range(n)]}, geometry=geoms, crs="EPSG:4548").to_file(
        path, driver="GPKG")
    return path


def upload(api: Api, path: Path, kind: str, headers: dict[str, str] | None = None, **data: str):
    with path.open("rb") as fh:
        return api.post("admin", "/api/v1/layers", files={"file": (path.name, fh)},
                        data={"kind": kind, **data}, headers=headers or {})


def run_jobs(api: Api) -> None:
    worker = Worker(api.services.jobs, api.services.job_handlers(), name="w-test")
    while worker.run_once():
        pass


def left_in_uploads(api: Api) -> list[Path]:
    return list(uploads_root(api.services.settings.data_dir).glob("*/*"))


def test_a_layer_import_job_reports_chunks_and_ends_with_its_input_removed(
        quiet: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers.stream, "CHUNK_FEATURES", 500)  # 1,200 features: chunks of 500, 500, 200
    path = patches(tmp_path, 1200)
    r = upload(quiet, path, "permanent_farmland", ASYNC, name="农田")
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"/api/v1/jobs/{job['job_id']}"
    assert job["status"] == "queued" and job["kind"] == "layer_import"
    folder = quiet.services.jobs.input_dir(job["job_id"])
    assert (folder / "farmland.gpkg").read_bytes() == path.read_bytes(), "the upload is the job's input"
    assert not left_in_uploads(quiet), "moved, not copied"
    assert_error(quiet.get("admin", "/api/v1/layers/农田"), 404, "layer_not_found")

    seen: list[dict] = []
    real_save = quiet.services.stores.layers.save_stream

    def watched(stream, by, *, replace=False, progress=None):  # the client polls after every chunk
        def each(read: int, total: int) -> None:
            progress(read, total)
            polled = quiet.get("reviewer", r.headers["Location"]).json()
            seen.append({**polled["progress_detail"], "status": polled["status"], "at": polled["progress"]})
        return real_save(stream, by, replace=replace, progress=each)

    monkeypatch.setattr(quiet.services.stores.layers, "save_stream", watched)
    run_jobs(quiet)
    done = quiet.get("reviewer", r.headers["Location"]).json()
    assert done["status"] == "succeeded", done
    assert done["result"] == "/api/v1/layers/农田"
    assert done["progress_detail"]["chunk"] == 3, "the last progress is kept with the ended job"
    assert quiet.get("reviewer", done["result"]).json()["feature_count"] == 1200
    chunks = [(d["status"], d["chunk"], d["chunks"], d["features_read"], d["features_total"]) for d in seen]
    assert chunks == [("running", 1, 3, 500, 1200), ("running", 2, 3, 1000, 1200),
                      ("running", 3, 3, 1200, 1200)], seen
    assert [round(d["at"], 3) for d in seen] == [0.417, 0.833, 1.0]
    assert not folder.exists(), "the input goes when the job ends"


def test_small_uploads_stay_synchronous_and_large_ones_become_jobs(quiet: Api, tmp_path: Path) -> None:
    small = write_layer(tmp_path, "ecological_redline")
    r = upload(quiet, small, "ecological_redline")
    assert r.status_code == 201 and r.json()["feature_count"] == 1, r.text
    assert not left_in_uploads(quiet)
    big = patches(tmp_path, 1500)
    assert 300_000 < big.stat().st_size < 600_000, big.stat().st_size  # over layer_job_bytes, in the limit
    r = upload(quiet, big, "permanent_farmland")
    assert r.status_code == 202, r.text
    run_jobs(quiet)
    assert quiet.get("admin", r.headers["Location"]).json()["status"] == "succeeded"


def test_an_upload_past_the_limit_is_413_naming_it_and_leaves_nothing(quiet: Api, tmp_path: Path) -> None:
    big = tmp_path / "big.geojson"
    big.write_bytes(b'{"type": "FeatureCollection", "features": []}' + b" " * 650_000)
    # 650 kB: over the 600 kB file limit, under the body cap (limit + 64 KiB of framing)
    r = upload(quiet, big, "permanent_farmland")
    assert_error(r, 413, "file_too_large")
    assert "BLUEPRINT_LAYER_MAX_BYTES" in r.json()["detail"] and "big.geojson" in r.json()["detail"]
    assert not left_in_uploads(quiet)
    assert quiet.services.jobs.counts() == {}


def test_a_bad_layer_upload_is_a_clear_4xx_not_a_job(quiet: Api, tmp_path: Path) -> None:
    path = write_layer(tmp_path, "ecological_redline")
    assert_error(upload(quiet, path, "no_such_kind", ASYNC), 422, "unknown_kind")
    r = quiet.post("admin", "/api/v1/layers", files={"kind": (None, "ecological_redline")})  # no file part
    assert_error(r, 422, "invalid_request")
    assert "file" in r.json()["detail"]
    two = quiet.post("admin", "/api/v1/layers", data={"kind": "ecological_redline"},
                     files=[("file", ("a.geojson", b"{}")), ("file", ("b.geojson", b"{}"))])
    assert_error(two, 422, "invalid_request")
    cut = quiet.client.post(  # the body ends before its closing boundary
        "/api/v1/layers", content=b'--xyz\r\nContent-Disposition: form-data; name="kind"\r\n\r\nurban',
        headers={**quiet.h("admin"), "Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(cut, 422, "invalid_request")
    assert_error(quiet.post("admin", "/api/v1/layers", json={"kind": "x"}), 422, "invalid_request")
    assert quiet.services.jobs.counts() == {} and not left_in_uploads(quiet)


def test_a_build_as_a_job_makes_the_draft_and_points_at_it(quiet: Api, tmp_path: Path) -> None:
    for kind in LAYERS:
        assert upload(quiet, write_layer(tmp_path, kind), kind, name=kind).status_code == 201
    r = quiet.post("admin", "/api/v1/blueprints", json={}, headers=ASYNC)
    assert r.status_code == 202, r.text
    assert quiet.get("admin", "/api/v1/blueprints").json() == []
    run_jobs(quiet)
    done = quiet.get("admin", r.headers["Location"]).json()
    assert done["status"] == "succeeded" and done["result"] == f"/api/v1/blueprints/{done['result_id']}"
    assert quiet.get("admin", done["result"]).json()["status"] == "draft"
    assert_error(quiet.post("admin", "/api/v1/blueprints", json={"layers": ["nope"]}, headers=ASYNC),
                 404, "layer_not_found")


def test_a_large_build_becomes_a_job_without_asking(db_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for(db_url, tmp_path, worker_in_process=False, build_job_features=2))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        for kind in LAYERS:  # four features in all
            assert upload(api, write_layer(tmp_path, kind), kind, name=kind).status_code == 201
        one = api.post("admin", "/api/v1/blueprints", json={"layers": ["ecological_redline"]})
        assert one.status_code == 201, "one feature: built in the request"
        r = api.post("admin", "/api/v1/blueprints", json={})
        assert r.status_code == 202 and json.loads(r.text)["kind"] == "build"
    app.state.services.close()


def plan_with_chinese_columns(tmp: Path) -> Path:
    """Two 控规地块 whose code and FAR columns carry a department's Chinese names."""
    path = tmp / "kg.geojson"
    gpd.GeoDataFrame({"BH": ["KG-1", "KG-2"], "用地代码": ["1001", "0701"], "容积率": [1.5, 2.5]},
                     geometry=[rect(1200, 0, 1400, 200), rect(1400, 0, 1600, 200)],
                     crs="EPSG:4548").to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
    return path


def test_field_overrides_reach_a_layer_import_job(quiet: Api, tmp_path: Path) -> None:
    path = plan_with_chinese_columns(tmp_path)
    r = upload(quiet, path, "detailed_plan", ASYNC, name="控规", fields="YDDM=用地代码,RJL=容积率")
    assert r.status_code == 202, r.text
    run_jobs(quiet)
    done = quiet.get("admin", r.headers["Location"]).json()
    assert done["status"] == "succeeded", done
    frame = quiet.services.stores.layers.get("控规").frame.sort_values("feature_id")
    assert list(frame["land_use"]) == ["1001", "0701"] and list(frame["far_max"]) == [1.5, 2.5]


def test_without_the_overrides_the_same_job_fails_naming_the_field(quiet: Api, tmp_path: Path) -> None:
    r = upload(quiet, plan_with_chinese_columns(tmp_path), "detailed_plan", ASYNC, name="控规")
    assert r.status_code == 202, r.text
    run_jobs(quiet)
    done = quiet.get("admin", r.headers["Location"]).json()
    assert done["status"] == "failed" and "YDDM" in json.dumps(done, ensure_ascii=False), done
