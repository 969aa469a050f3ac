"""Real-size plan layers import with the default limits; submissions of that size are still refused.

The layer is generated: 60,000 square farmland patches (40 m, 5 m apart) in EPSG:4548 around the demo
city origin (tests.geoms X0, Y0), written once per session as a GeoPackage (~15 MB) the way a
department hands farmland over (layer 永久基本农田, ids in BSM).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cli.main import build_app
from runtime.settings import LAYER_LIMITS, SUBMISSION_LIMITS, Settings
from tests.api.conftest import settings_for
from tests.api.test_service import assert_error
from tests.geoms import X0, Y0

PATCHES = 60_000
LIMIT_SETTINGS = [*SUBMISSION_LIMITS.values(), *LAYER_LIMITS.values()]


def farmland(count: int, side: float = 40.0, gap: float = 5.0) -> gpd.GeoDataFrame:
    """``count`` square patches on a grid, row by row from (X0, Y0), EPSG:4548."""
    cols = int(np.ceil(np.sqrt(count)))
    i = np.arange(count)
    x = X0 + (i % cols) * (side + gap)
    y = Y0 + (i // cols) * (side + gap)
    return gpd.GeoDataFrame({"BSM": [f"NT{k:07d}" for k in i], "DLMC": "水田"},
                            geometry=shapely.box(x, y, x + side, y + side), crs=4548)


@pytest.fixture(scope="module")
def farm_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("real-size") / "farm.gpkg"
    farmland(PATCHES).to_file(path, layer="永久基本农田", driver="GPKG", engine="pyogrio")
    return path


@pytest.fixture
def default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """No limit is raised from the environment: the defaults apply."""
    for setting in LIMIT_SETTINGS:
        monkeypatch.delenv(f"BLUEPRINT_{setting.upper()}", raising=False)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_limits: None):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("BLUEPRINT_DATABASE_URL", raising=False)
    runner, app = CliRunner(), build_app()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    return invoke


def test_default_limits_fit_a_province_layer_and_keep_submissions_small(default_limits: None) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    layer, submission = s.layer_limits(), s.submission_limits()
    assert layer.max_features >= 5_000_000 and layer.max_vertices >= 500_000_000
    assert layer.max_bytes >= 4 * 10**9
    assert (submission.max_features, submission.max_vertices, submission.max_bytes) == (
        10_000, 2_000_000, 50 * 1024**2)


def test_limits_are_raised_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUEPRINT_LAYER_MAX_FEATURES", "12000000")
    monkeypatch.setenv("BLUEPRINT_MAX_FEATURES", "20000")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.layer_limits().max_features == 12_000_000
    assert s.submission_limits().max_features == 20_000


@pytest.mark.slow
def test_cli_imports_a_60000_patch_layer_with_default_limits(cli, farm_gpkg: Path, tmp_path: Path) -> None:
    result = cli("layers", "import", str(farm_gpkg), "--kind", "permanent_farmland")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feature_count"] == PATCHES
    assert summary["area_m2"] == PATCHES * 1600.0
    from runtime.stores import open_stores

    stores = open_stores(Settings(_env_file=None, data_dir=tmp_path / "var"))  # type: ignore[call-arg]
    try:
        assert stores.layers.count("永久基本农田") == PATCHES
    finally:
        stores.close()


@pytest.mark.slow
def test_cli_imports_in_chunks_with_a_progress_bar(cli, farm_gpkg: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("layers.stream.CHUNK_FEATURES", 20_000)
    result = cli("layers", "import", str(farm_gpkg), "--kind", "permanent_farmland")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feature_count"] == PATCHES and summary["area_m2"] == PATCHES * 1600.0
    assert summary["notes"] == ["feature_id from attribute 'BSM'", "CRS EPSG:4548 from the file"]
    assert f"{PATCHES}/{PATCHES}" in result.stderr  # the progress bar, finished


def test_cli_layer_limit_error_names_the_environment_variable(cli, farm_gpkg: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUEPRINT_LAYER_MAX_FEATURES", "1000")
    result = cli("layers", "import", str(farm_gpkg), "--kind", "permanent_farmland")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "file_too_large"
    assert error["detail"] == (
        "farm.gpkg: 60,000 features, more than the plan-layer limit of 1,000 features; "
        "set the environment variable BLUEPRINT_LAYER_MAX_FEATURES to raise it")


@pytest.mark.slow
def test_cli_refuses_60000_parcels_by_the_submission_limit(cli, farm_gpkg: Path, tmp_path: Path) -> None:
    result = cli("parcels", "convert", str(farm_gpkg), str(tmp_path / "out.geojson"))
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "file_too_large"
    assert error["detail"] == ("farm.gpkg: 60,000 features, more than the submission limit of 10,000 "
                               "features; set the environment variable BLUEPRINT_MAX_FEATURES to raise it")
    assert not (tmp_path / "out.geojson").exists()


@pytest.mark.slow
def test_api_imports_a_60000_patch_layer_and_refuses_it_as_a_submission(
        db_url: str, tmp_path: Path, farm_gpkg: Path, default_limits: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("layers.stream.CHUNK_FEATURES", 25_000)  # stored in three chunks
    app = create_app(settings_for(db_url, tmp_path))
    with TestClient(app) as client:
        admin, planner = (app.state.services.keys.create("t", role)[0] for role in ("admin", "planner"))
        body = farm_gpkg.read_bytes()
        r = client.post("/api/v1/layers", headers={"X-API-Key": admin},
                        files={"file": ("farm.gpkg", body)}, data={"kind": "permanent_farmland"})
        assert len(body) > app.state.services.settings.layer_job_bytes
        assert r.status_code == 202, r.text  # imported by the app's worker, a job
        deadline = time.monotonic() + 300
        while (job := client.get(r.headers["Location"], headers={"X-API-Key": admin}).json())["status"] in (
                "queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["status"] == "succeeded", job
        assert job["progress_detail"]["features_read"] == job["progress_detail"]["features_total"] == PATCHES
        assert job["progress_detail"]["chunks"] == 3
        summary = client.get(job["result"], headers={"X-API-Key": admin}).json()
        assert summary["feature_count"] == PATCHES
        assert app.state.services.stores.layers.count("永久基本农田") == PATCHES
        assert summary["area_m2"] == PATCHES * 1600.0 and summary["repairs"] == []
        # the same file sent for a check: the submission limit, named with the service's setting
        r = client.post("/api/v1/checks", headers={"X-API-Key": planner},
                        files={"file": ("farm.gpkg", body)}, data={"project_type": "industrial"})
        assert_error(r, 413, "file_too_large")
        assert r.json()["detail"] == (
            "farm.gpkg: 60,000 features, more than the submission limit of 10,000 features; "
            "the service setting BLUEPRINT_MAX_FEATURES raises it (ask the service administrator)")
    app.state.services.close()


@pytest.mark.slow
def test_api_refuses_60000_parcels_as_geojson(tmp_path: Path, default_limits: None) -> None:
    parcels = json.loads(farmland(PATCHES).to_crs(4326).to_json(drop_id=True))
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'b.sqlite'}", tmp_path))
    with TestClient(app) as client:
        planner = app.state.services.keys.create("t", "planner")[0]
        r = client.post("/api/v1/checks", headers={"X-API-Key": planner},
                        json={"project_type": "industrial",
                              "parcels": parcels})
        assert_error(r, 413, "file_too_large")
        assert "60,000 features, more than the submission limit of 10,000 features" in r.json()["detail"]
        assert "BLUEPRINT_MAX_FEATURES" in r.json()["detail"]
    app.state.services.close()


def test_api_layer_limit_error_names_the_service_setting(tmp_path: Path, farm_gpkg: Path) -> None:
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'b.sqlite'}", tmp_path, layer_max_features=1000))
    with TestClient(app) as client:
        admin = app.state.services.keys.create("t", "admin")[0]
        r = client.post("/api/v1/layers", headers={"X-API-Key": admin},
                        files={"file": ("farm.gpkg", farm_gpkg.read_bytes())},
                        data={"kind": "permanent_farmland"})
        assert_error(r, 413, "file_too_large")
        assert r.json()["detail"] == (
            "farm.gpkg: 60,000 features, more than the plan-layer limit of 1,000 features; "
            "the service setting BLUEPRINT_LAYER_MAX_FEATURES raises it (ask the service administrator)")
    app.state.services.close()
