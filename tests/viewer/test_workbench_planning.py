"""申报指标, 规划条件 and 区域评估 in the workbench and the meeting viewer, in real headless Chromium.

A planner declares 工业用地, 容积率 2.0 and 建筑高度 20 m for the 部标 parcels of the workbench test; the
plan parcel KG-A under TL-A01 allows FAR ≤ 1.5 (breach, red) and 24 m (within, green); the geohazard
assessment covers the city (可复用, exempt), the seismic one has expired. A non-number is refused by the
service naming the field. Saved, the project's 用地清单 downloads as Word; a reviewer sees the same
conditions in the viewer's panel. Screenshots: tests/artifacts/planning-*.png.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest

from tests.serving import publish_layers, serving
from tests.viewer.conftest import WORK, b
from tests.viewer.test_browser import ARTIFACTS, CHROMIUM, assert_local

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
docx = pytest.importorskip("docx")
from api.app import create_app  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from tests.viewer.test_workbench import (  # noqa: E402
    ADMIN,
    BUBIAO,
    LAYERS,
    REVIEWER,
    download,
    open_page,
    wait_state,
    workbench,
)

CODE = "2026-340705-47-01-000456"
PLAN = gpd.GeoDataFrame(
    {
        "编号": ["KG-A", "KG-B"],
        "YDDM": ["1001", "0901"],
        "RJL": [1.5, 3.0],
        "JZMD": [50.0, 40.0],
        "LDL": [15.0, 20.0],
        "JZXG": [24.0, 60.0],
    },
    # KG-A holds TL-A01 (E 512000–512200, N 3421000–3421150) whole; KG-B lies east of it
    geometry=[b(11900, 900, 12300, 1300), b(12900, 0, 13500, 1000)],
    crs=WORK,
)
ASSESSMENTS = gpd.GeoDataFrame(
    {
        "编号": ["PG-1", "PG-2"],
        "PGLX": ["geohazard", "地震安全性评价"],
        "WH": ["铜自然资〔2025〕3号", "铜震〔2015〕1号"],
        "PZRQ": ["2025-01-10", "2015-05-01"],
        "YXQZ": ["2099-12-31", "2020-05-01"],
    },
    geometry=[b(10000, -1000, 15000, 3000), b(10000, -1000, 15000, 3000)],
    crs=WORK,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("planning")
    settings = Settings(_env_file=None, data_dir=tmp, dev_mode=True)
    with serving(create_app(settings)) as base:
        publish_layers(
            base, ADMIN, {**LAYERS, "detailed_plan": PLAN, "regional_assessment": ASSESSMENTS}, WORK, tmp
        )
        yield base



def shot(page: Any, name: str, locator: Any = None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (locator or page).screenshot(path=str(ARTIFACTS / f"planning-{name}.png"))


def test_declared_plan_breach_and_exempt_assessment_in_workbench_and_viewer(
    chromium: Any, service: str, tmp_path: Path
) -> None:
    page = workbench(chromium, service, size=(1366, 900))
    uses = page.get_by_label("用地性质").locator("option").all_inner_texts()
    assert "未申报 not declared" in uses and any(u.strip() == "工业用地（1001）" for u in uses)
    page.get_by_label("地块文件").set_input_files(str(BUBIAO))
    page.get_by_label("项目类型").select_option(label="工业项目 Industrial project")
    page.get_by_label("用地性质").select_option("1001")
    page.get_by_label("容积率").fill("二点零")
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "input-error")
    error = page.locator("#wb-input-error").inner_text()
    assert "declared.far" in error, error  # the service names the field; nothing was screened

    page.get_by_label("容积率").fill("2.0")
    page.get_by_label("建筑高度").fill("20")
    shot(page, "1-declared")
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    conditions = page.locator("#ob-plan-conditions")
    kg_a = conditions.locator(".ob-condition[data-feature='KG-A']")
    assert "不符合规划条件" in kg_a.inner_text() and "工业用地（1001）" in kg_a.inner_text()
    far = kg_a.locator("tr.ob-finding[data-indicator='far']")
    assert far.get_attribute("class").split()[-1] == "ob-breach"
    assert "超出" in far.inner_text() and "不大于 1.5" in far.inner_text() and "-0.5" in far.inner_text()
    # the breach is drawn red, the height within its limit green
    assert (
        far.locator(".ob-result").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(215, 25, 28)"
    )
    height = kg_a.locator("tr.ob-finding[data-indicator='height_m']")
    assert "符合" in height.inner_text() and "ob-ok" in (height.get_attribute("class") or "")
    geo = page.locator("#ob-assessments tr[data-type='geohazard']").first
    assert "可复用（免于单独评估）" in geo.inner_text() and "铜自然资〔2025〕3号" in geo.inner_text()
    assert (
        "已过期（须重新评估）"
        in page.locator("#ob-assessments tr[data-type='seismic_safety']").first.inner_text()
    )
    text = page.get_by_role("region", name="检测结果").inner_text()
    for raw in ("exempt", "expired", "far_max", "listed"):
        assert raw not in text
    conditions.scroll_into_view_if_needed()
    shot(page, "2-conditions", page.locator("#wb-panel"))

    page.get_by_label("项目代码").fill(CODE)
    page.get_by_label("项目名称").fill("铜陵经开区新材料厂房")
    page.get_by_label("建设单位").fill("铜陵市建设投资集团")
    page.get_by_label("行政区 District").fill("铜官区")
    page.get_by_role("button", name="保存并检测").click()
    wait_state(page, "saved", timeout=60_000)
    word = download(page, "下载用地清单（Word）", tmp_path / "checklist.docx")
    cells = [c.text for t in docx.Document(io.BytesIO(word)).tables for r in t.rows for c in r.cells]
    assert CODE in cells and "超出" in cells and "可复用（免于单独评估）" in cells
    assert page.errors == []
    assert_local(page.requested, service)

    viewer = open_page(chromium, service, REVIEWER, f"/viewer?project={CODE}", (1366, 900))
    viewer.wait_for_url(f"{service}/viewer")  # signed in, back on the map
    viewer.goto(f"{service}/viewer?project={CODE}")
    viewer.wait_for_function("OneBlueprint.state === 'located'", timeout=30_000)
    viewer.wait_for_selector("#ob-plan-conditions .ob-condition[data-feature='KG-A']", timeout=30_000)
    panel = viewer.locator("#ob-panel")
    assert "不符合规划条件" in panel.inner_text() and "可复用（免于单独评估）" in panel.inner_text()
    assert viewer.locator("#ob-checklist").count() == 1
    viewer.locator("#ob-plan-conditions").scroll_into_view_if_needed()
    shot(viewer, "3-viewer-panel")
    assert viewer.errors == []
