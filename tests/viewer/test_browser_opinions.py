"""The viewer panel on the real service: a project's 预警 after a publish changed its verdict (a planner
acknowledges it there) and the departments' opinions of a project in planning — Chinese labels only.

Set up over HTTP in dev mode with two department keys; the in-process worker runs the re-screening.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import uvicorn
from shapely.geometry import mapping

from layers.crs import OUTPUT_CRS
from tests.serving import free_port
from tests.viewer.conftest import WORK, b
from tests.viewer.test_browser import ARTIFACTS, CHROMIUM, assert_local

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
httpx = pytest.importorskip("httpx")

from api.app import create_app  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from tests.viewer.test_browser_real_app import ADMIN, PLANNER, seed  # noqa: E402

WARNED, PLANNED = "2026-340705-47-01-000911", "2026-340705-47-01-000912"
HAZARD = b(400, 100, 800, 400)


def _features(geom: Any) -> dict[str, Any]:
    out = gpd.GeoSeries([geom], crs=WORK).to_crs(OUTPUT_CRS).iloc[0]
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"parcel_id": "1"}, "geometry": mapping(out)}],
    }


def _project(http: Any, code: str, geom: Any, stage: str) -> None:
    r = http.post(
        "/api/v1/projects",
        headers={"X-API-Key": PLANNER},
        json={
            "code": code,
            "name": f"测试项目{code[-3:]}",
            "project_type": "industrial",
            "applicant": "测试单位",
            "district": "铜官区",
            "stage": stage,
            "parcels": _features(geom),
        },
    )
    assert r.status_code == 201, r.text


def setup_flow(base: str, tmp: Path, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        _project(http, WARNED, b(500, 200, 600, 300), "submitted")
        assert (
            http.post(f"/api/v1/projects/{WARNED}/checks", headers={"X-API-Key": PLANNER}).status_code == 201
        )
        _project(http, PLANNED, b(600, 500, 700, 600), "planning")
        r = http.post(
            f"/api/v1/projects/{PLANNED}/rounds",
            headers={"X-API-Key": PLANNER},
            json={"departments": ["water", "ecology_environment", "natural_resources"], "working_days": 5},
        )
        assert r.status_code == 201, r.text
        rid = r.json()["round_id"]
        for dept, body in (
            ("water", {"answer": "agree_with_conditions", "conditions": ["排水接入市政管网"]}),
            ("ecology_environment", {"answer": "agree"}),
        ):
            r = http.post(
                f"/api/v1/projects/{PLANNED}/rounds/{rid}/opinions",
                headers={"X-API-Key": keys[dept]},
                json=body,
            )
            assert r.status_code == 201, r.text
        path = tmp / "hazard.geojson"
        gpd.GeoDataFrame({"fid_src": ["1"]}, geometry=[HAZARD], crs=WORK).to_crs(OUTPUT_CRS).to_file(
            path, driver="GeoJSON"
        )
        with path.open("rb") as fh:
            r = http.post(
                "/api/v1/layers",
                headers={"X-API-Key": ADMIN},
                data={"kind": "geohazard_zone"},
                files={"file": (path.name, fh, "application/geo+json")},
            )
        assert r.status_code == 201, r.text
        version = http.post("/api/v1/blueprints", headers={"X-API-Key": ADMIN}, json={}).json()["version"]
        r = http.post(f"/api/v1/blueprints/{version}/publish", headers={"X-API-Key": ADMIN})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 120
        for job_id in (r.json()["rescreen_job_id"],):
            while (
                http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": ADMIN}).json()["status"]
                != "succeeded"
            ):
                assert time.monotonic() < deadline, "the re-screening did not finish"
                time.sleep(0.3)
        project = http.get(f"/api/v1/projects/{WARNED}", headers={"X-API-Key": PLANNER}).json()
        assert project["warning"] and project["warning"]["after"] == "review", project


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("viewer_opinions")
    app = create_app(Settings(_env_file=None, data_dir=tmp, dev_mode=True))
    keys = {
        d: app.state.services.keys.create(f"{d} 经办人", "department", department=d)[0]
        for d in ("water", "ecology_environment")
    }
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    try:
        seed(base, tmp)
        setup_flow(base, tmp, keys)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_warning_and_opinions_in_the_panel(served: str) -> None:
    base = served
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            requested: list[str] = []
            errors: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/viewer")
            page.fill("#key", PLANNER)
            page.click("button[type=submit]")
            page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")

            page.evaluate(f"OneBlueprint.select('{WARNED}')")
            page.wait_for_function("OneBlueprint.state === 'located'", timeout=30_000)
            warning = page.locator("#ob-panel .ob-warning")
            assert warning.is_visible()
            text = warning.inner_text()
            for expected in ("预警", "通过 Pass", "需审查 Review", "地质灾害高易发区：无 → 有条件"):
                assert expected in text, (expected, text)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "viewer-warning.png"))
            page.click("#ob-ack")
            page.wait_for_function(
                "OneBlueprint.state === 'located' && !document.querySelector('#ob-panel .ob-warning')",
                timeout=30_000,
            )

            page.evaluate(f"OneBlueprint.select('{PLANNED}')")
            page.wait_for_function("OneBlueprint.state === 'located'", timeout=30_000)
            panel = page.locator("#ob-panel").inner_text()
            for expected in (
                "策划中 Planning",
                "前期意见",
                "征询中",
                "水务局：有条件同意（条件：排水接入市政管网）",
                "生态环境局：同意",
                "自然资源和规划局：待答复",
            ):
                assert expected in panel, (expected, panel)
            for raw in ("agree_with_conditions", "pending", "natural_resources"):
                assert raw not in panel, raw  # never a raw code on a screen
            page.screenshot(path=str(ARTIFACTS / "viewer-opinions.png"))
            assert errors == []
            assert_local(requested, base)
        finally:
            browser.close()
