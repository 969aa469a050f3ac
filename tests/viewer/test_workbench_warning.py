"""预警 in the workbench (issue #13 item 4): a publish re-screens a pool project and changes its verdict; the
planner who types that project's code in the workbench sees the warning (before → after, kind changed)
and acknowledges it there. Real headless Chromium against the real ``create_app`` with its in-process
worker doing the re-screening; screenshot in tests/artifacts/workbench-warning-*.png.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import publish_layers, serving
from tests.viewer.conftest import WORK, b
from tests.viewer.test_browser import CHROMIUM, assert_local
from tests.viewer.test_workbench import ADMIN, BUBIAO, LAYERS, PLANNER, shot, wait_state, workbench

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
httpx = pytest.importorskip("httpx")
from api.app import create_app  # noqa: E402
from runtime.settings import Settings  # noqa: E402

CODE = "2026-340705-47-01-000777"
PARCEL = b(14000, 2000, 14100, 2100)  # inside the urban boundary, clear of every line in v1
REDLINE_V2 = b(13900, 1900, 14300, 2300)  # v2 draws a red line over the whole parcel


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("workbench-warning")
    settings = Settings(_env_file=None, data_dir=tmp, dev_mode=True)
    with serving(create_app(settings)) as base:
        (tmp / "v1").mkdir()
        publish_layers(base, ADMIN, LAYERS, WORK, tmp / "v1")
        yield base



def project(base: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/v1/projects/{CODE}", headers={"X-API-Key": PLANNER}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def screened_project_then_new_redline(base: str, tmp: Path) -> dict[str, Any]:
    """The project passes on v1; v2 puts a red line over it; the in-process worker re-screens it."""
    import geopandas as gpd

    from layers.crs import OUTPUT_CRS

    parcel = gpd.GeoSeries([PARCEL], crs=WORK).to_crs(OUTPUT_CRS).__geo_interface__
    body = {"code": CODE, "name": "预警测试项目", "project_type": "industrial", "applicant": "某公司",
            "district": "铜官区", "parcels": parcel}
    with httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": PLANNER}) as http:
        assert http.post("/api/v1/projects", json=body).status_code == 201
        r = http.post(f"/api/v1/projects/{CODE}/checks")
        assert r.status_code == 201 and r.json()["verdict"] == "pass", r.text
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "redline_v2.geojson"
    gpd.GeoDataFrame({"fid_src": ["2"]}, geometry=[REDLINE_V2], crs=WORK).to_crs(OUTPUT_CRS).to_file(path)
    with httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": ADMIN}) as http:
        with path.open("rb") as fh:  # a second red-line layer beside v1's: v2 merges both
            r = http.post("/api/v1/layers", data={"kind": "ecological_redline", "name": "redline_v2"},
                          files={"file": (path.name, fh, "application/geo+json")})
        assert r.status_code == 201, r.text
        r = http.post("/api/v1/blueprints", json={})
        assert r.status_code == 201, r.text
        r = http.post(f"/api/v1/blueprints/{r.json()['version']}/publish")
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = project(base)
        if current["warning"]:
            return current
        time.sleep(0.5)
    raise AssertionError(f"no 预警 after the publish: {current}")


def test_a_changed_verdict_shows_as_a_warning_the_planner_acknowledges_in_the_workbench(
        chromium: Any, service: str, tmp_path: Path) -> None:
    warned = screened_project_then_new_redline(service, tmp_path / "v2")
    assert (warned["warning"]["before"], warned["warning"]["after"]) == ("pass", "conflict")

    page = workbench(chromium, service)
    page.get_by_label("地块文件").set_input_files(str(BUBIAO))
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    page.get_by_label("项目代码").fill(CODE)
    page.get_by_label("项目代码").press("Tab")  # a change event, as a person leaving the field
    alert = page.locator("#wb-pool .ob-warning")
    alert.wait_for(timeout=30_000)
    text = page.locator("#wb-pool").inner_text()
    assert "预警测试项目" in text and "已检测" in text, text
    assert "预警" in alert.inner_text() and "通过" in alert.inner_text() and "冲突" in alert.inner_text()
    assert "生态保护红线" in alert.inner_text(), alert.inner_text()
    # no raw codes (English labels such as "Pass" and "re-screened" stand beside the Chinese, not instead)
    assert not re.search(r"(?<![-\w])(pass|conflict|screened|industrial)(?![-\w])", text), text
    shot(page, "warning-1-shown")

    page.get_by_role("button", name="确认预警 Acknowledge").click()
    page.locator("#wb-pool .ob-warning").wait_for(state="detached", timeout=30_000)
    assert project(service)["warning"] is None
    shot(page, "warning-2-acknowledged")
    assert not page.errors, page.errors
    assert_local(page.requested, service)


def test_a_new_code_says_new_project(chromium: Any, service: str) -> None:
    page = workbench(chromium, service)
    page.get_by_label("地块文件").set_input_files(str(BUBIAO))
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    page.get_by_label("项目代码").fill("2026-340705-47-01-000999")
    page.get_by_label("项目代码").press("Tab")
    page.wait_for_function("document.getElementById('wb-pool').textContent.indexOf('新项目') >= 0")
    assert page.locator("#wb-pool .ob-warning").count() == 0
