"""End-to-end against the real service: ``api.app.create_app`` on embedded SpatiaLite, in Chromium.

Everything is set up through the public HTTP API in dev mode (upload layers, build, publish, create a
project, screen it, record a review); then a person signs in with the pre-filled dev key, searches the
project and reads its panel. Nothing may leave localhost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import mapping

from layers.crs import OUTPUT_CRS
from tests.serving import publish_layers, serving
from tests.viewer.conftest import PARCEL, WORK, b
from tests.viewer.test_browser import ARTIFACTS, CHROMIUM, assert_local

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
httpx = pytest.importorskip("httpx")
app_module = pytest.importorskip("api.app")
settings_module = pytest.importorskip("runtime.settings")

ADMIN, PLANNER, REVIEWER = "dev-admin-key", "dev-planner-key", "dev-reviewer-key"  # dev mode only
LAYERS = {  # metres from the demo origin, EPSG:4548 (see tests/viewer/conftest.py)
    "ecological_redline": b(-1000, -1000, -400, 1000),
    "permanent_farmland": b(-400, -1000, 200, 0),
    "urban_boundary": b(-400, 0, 1000, 1000).union(b(200, -1000, 1000, 0)),
    "ecological_space": b(-1000, -1000, -400, 1000),
    "agricultural_space": b(-400, -1000, 200, 0),
    "urban_space": b(-400, 0, 1000, 1000).union(b(200, -1000, 1000, 0)),
    "city_boundary": b(-1000, -1000, 1000, 1000),
}
CODE = "2026-340705-47-01-000901"


def seed(base: str, tmp: Path) -> str:
    """Layers → blueprint v1 (published) → project → check → review, all over HTTP; the check id."""
    publish_layers(base, ADMIN, LAYERS, WORK, tmp)
    with httpx.Client(base_url=base, timeout=120) as http:
        parcel = gpd.GeoSeries([PARCEL], crs=WORK).to_crs(OUTPUT_CRS).iloc[0]
        project = {"code": CODE, "name": "铜陵端到端测试园区", "project_type": "industrial",
                   "applicant": "测试单位", "district": "铜官区",
                   "parcels": {"type": "FeatureCollection", "features": [
                       {"type": "Feature", "properties": {"parcel_id": "1"}, "geometry": mapping(parcel)}]}}
        r = http.post("/api/v1/projects", headers={"X-API-Key": PLANNER}, json=project)
        assert r.status_code == 201, r.text
        r = http.post(f"/api/v1/projects/{CODE}/checks", headers={"X-API-Key": PLANNER},
                      json={"project_type": "industrial"})
        assert r.status_code == 201, r.text
        check_id = str(r.json()["check_id"])
        r = http.post(f"/api/v1/projects/{CODE}/reviews", headers={"X-API-Key": REVIEWER},
                      json={"decided_by": "联审会 joint review board", "decision": "rejected",
                            "reasons": "占用生态保护红线 takes the red line"})
        assert r.status_code == 201, r.text
        return check_id


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("viewer_real")
    settings = settings_module.Settings(_env_file=None, data_dir=tmp, dev_mode=True)
    with serving(app_module.create_app(settings)) as base:
        yield base, seed(base, tmp)


def test_meeting_flow_on_the_real_service(real: tuple[str, str]) -> None:
    base, check_id = real
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            requested: list[str] = []
            errors: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/viewer")
            assert page.url == f"{base}/viewer/login"
            assert page.locator("#dev-mode").is_visible(), "dev mode says so on the form"
            page.click("button[type=submit]")  # the dev key is pre-filled
            page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
            # the project pool's parcels ride in the same MVT tiles as the blueprint's layers
            page.wait_for_function("['ecological_redline', 'permanent_farmland', 'urban_boundary', 'parcels']"
                                   ".every(k => (OneBlueprint.drawn[k] || 0) > 0)", timeout=30_000)
            page.fill("#ob-search", CODE)
            page.press("#ob-search", "Enter")
            page.wait_for_function("OneBlueprint.state === 'located'", timeout=30_000)
            page.wait_for_timeout(1500)
            text = page.locator("#ob-panel").inner_text()
            expected_texts = (CODE, "铜陵端到端测试园区", "冲突 Conflict", check_id, "生态保护红线",
                              "不同意 Rejected")
            for expected in expected_texts:
                assert expected in text, expected
            assert page.locator("path.ob-parcel").count() >= 1
            assert page.locator("path.ob-overlap-ecological_redline").count() >= 1
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "viewer-real-app.png"))
            assert errors == []
            assert_local(requested, base)
        finally:
            browser.close()


def test_report_on_the_real_service(real: tuple[str, str]) -> None:
    base, check_id = real
    with httpx.Client(base_url=base, headers={"X-API-Key": REVIEWER}, timeout=120) as http:
        html = http.get(f"/viewer/reports/{check_id}.html")
        assert html.status_code == 200 and "铜陵端到端测试园区" in html.text
        assert "不同意 Rejected" in html.text
        pdf = http.get(f"/viewer/reports/{check_id}.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        tile = http.get("/viewer/tiles/v1/ecological_redline/14/13516/6712.geojson")
        assert tile.status_code == 200 and json.loads(tile.text)["type"] == "FeatureCollection"
        assert http.get("/viewer/tiles/v1/ecological_redline/14/13516/6712.geojson",
                        headers={"X-API-Key": "wrong"}).status_code == 401


def test_viewer_data_shapes_match_the_api(real: tuple[str, str]) -> None:
    """The fields viewer.js reads are the ones the API returns (guards the contract both ways)."""
    base, _ = real
    with httpx.Client(base_url=base, headers={"X-API-Key": REVIEWER}, timeout=60) as http:
        found: Any = http.get("/api/v1/projects", params={"q": CODE[-6:]}).json()
        items = found if isinstance(found, list) else found["items"]
        assert [p["code"] for p in items] == [CODE]
        project = http.get(f"/api/v1/projects/{CODE}").json()
        assert project.get("latest_check_id") or project["checks"][-1]["check_id"]
        assert project["reviews"][0]["decision"] == "rejected"
        location = http.get(f"/api/v1/projects/{CODE}/location").json()
        assert len(location["bbox"]) == 4 and location["geometry"]["type"] in ("Polygon", "MultiPolygon")
