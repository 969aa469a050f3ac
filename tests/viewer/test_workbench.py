"""The planner's workbench end to end, in real headless Chromium against the real ``create_app``.

A planner signs in, uploads a 部标 TXT (tests/data/bubiao/two_parcels_hole.txt, typed by hand, see its
README), chooses 工业项目, presses 开始检测, reads the verdict and the overlap m² in 检测结果, downloads the
Word and Excel reports (checked with python-docx / openpyxl against the stored check), saves the project;
a reviewer records 有条件同意 in the viewer. Bad input gets its Chinese message beside the file field.
Screenshots of each step go to tests/artifacts/workbench-*.png. Nothing may leave localhost.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest

from layers.crs import OUTPUT_CRS
from tests.serving import publish_layers, serving
from tests.viewer.conftest import WORK, b
from tests.viewer.test_browser import ARTIFACTS, CHROMIUM, assert_local

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
httpx = pytest.importorskip("httpx")
docx = pytest.importorskip("docx")
openpyxl = pytest.importorskip("openpyxl")
from api.app import create_app  # noqa: E402
from runtime.settings import Settings  # noqa: E402

ADMIN, PLANNER, REVIEWER = "dev-admin-key", "dev-planner-key", "dev-reviewer-key"  # dev mode only
BUBIAO = Path(__file__).resolve().parents[1] / "data" / "bubiao" / "two_parcels_hole.txt"
# The 部标 file's parcels (EPSG:4527 with zone prefix = 4548 + 39,000,000 m): TL-A01 is the rectangle
# E 512000–512200, N 3421000–3421150 with a 50 × 30 m hole; TL-B02 a trapezoid near E 513000–513120.
# The red line takes the east 100 m of TL-A01: 100 m × 150 m = 15,000 m² (the hole lies west of it).
LAYERS = {
    "ecological_redline": b(12100, 900, 12400, 1200),
    "permanent_farmland": b(13060, 300, 13400, 700),
    "urban_boundary": b(10000, -1000, 12100, 3000).union(b(12400, -1000, 15000, 3000)),
    "city_boundary": b(10000, -1000, 15000, 3000),
}
REDLINE_OVERLAP_M2 = 15_000.0
CODE = "2026-340705-47-01-000123"


def seed(base: str, tmp: Path) -> None:
    publish_layers(base, ADMIN, LAYERS, WORK, tmp)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("workbench")
    # more than 2 parcels go to a durable job, so the workbench's progress path is exercised too
    settings = Settings(_env_file=None, data_dir=tmp, dev_mode=True, job_parcel_threshold=2)
    with serving(create_app(settings)) as base:
        seed(base, tmp)
        yield base



def open_page(chromium: Any, base: str, key: str, path: str, size: tuple[int, int] = (1366, 768)) -> Any:
    """Sign in through the form as a person would, landing on ``path``."""
    context = chromium.new_context(viewport={"width": size[0], "height": size[1]}, accept_downloads=True)
    page = context.new_page()
    page.requested, page.errors = [], []
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(f"{base}{path}")
    assert "/viewer/login" in page.url
    page.fill("#key", key)
    page.click("button[type=submit]")
    return page


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"workbench-{name}.png"))


def workbench(chromium: Any, base: str, key: str = PLANNER, size: tuple[int, int] = (1366, 768)) -> Any:
    page = open_page(chromium, base, key, "/workbench", size)
    wait_state(page, "ready", timeout=30_000)
    assert page.url == f"{base}/workbench"
    return page


def wait_state(page: Any, state: str, timeout: int = 30_000) -> None:
    page.wait_for_function(f"document.body && document.body.getAttribute('data-wb-state') === '{state}'",
                           timeout=timeout)


def stored_check(base: str, check_id: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/v1/checks/{check_id}", headers={"X-API-Key": PLANNER}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def download(page: Any, link_text: str, target: Path) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_text).click()
    info.value.save_as(str(target))
    return target.read_bytes()


def redline_hit(check: dict[str, Any]) -> dict[str, Any]:
    hits = [h for p in check["parcels"] for h in p["conflicts"] if h["kind"] == "ecological_redline"]
    assert len(hits) == 1, hits
    return hits[0]


def test_planner_flow_upload_screen_reports_save_then_reviewer_decides(
        chromium: Any, service: str, tmp_path: Path) -> None:
    page = workbench(chromium, service)
    shot(page, "1-signed-in")
    assert "规划编审人员" in page.locator("#wb-user").inner_text()
    options = page.get_by_label("项目类型").locator("option").all_inner_texts()
    assert "工业项目 Industrial project" in options and not any("industrial" in o for o in options)
    assert page.get_by_label("蓝图版本").input_value() == "v1"

    page.get_by_label("地块文件").set_input_files(str(BUBIAO))
    page.get_by_label("项目类型").select_option(label="工业项目 Industrial project")
    shot(page, "2-file-chosen")
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    result = page.get_by_role("region", name="检测结果")
    text = result.inner_text()
    assert "冲突" in text and "生态保护红线" in text and "15,000.00" in text, text
    assert "禁止" in text and "《关于在国土空间规划中统筹划定落实三条控制线的指导意见》" in text
    assert "industrial" not in text and "forbidden" not in text  # no raw codes on screen
    assert page.locator("path.ob-overlap-ecological_redline").count() == 1
    assert page.locator("path.ob-parcel").count() >= 1
    shot(page, "3-result")

    page.locator("#wb-table tr.wb-hit").first.click()  # zooms to that overlap
    page.wait_for_function("document.body.getAttribute('data-wb-zoomed') === '0'")
    shot(page, "4-zoomed-to-overlap")

    check_id = page.locator("#wb-check-id").inner_text().strip()
    check = stored_check(service, check_id)
    hit = redline_hit(check)
    assert abs(hit["overlap_area_m2"] - REDLINE_OVERLAP_M2) < 0.01

    word = download(page, "下载审查报告（Word）", tmp_path / "report.docx")
    document = docx.Document(io.BytesIO(word))
    cells = [c.text for t in document.tables for r in t.rows for c in r.cells]
    assert json.dumps(hit["overlap_area_m2"]) in cells
    assert json.dumps(hit["overlap_ellipsoidal_area_m2"]) in cells
    assert check_id in cells and "工业项目 Industrial project" in cells
    assert any(s.reltype.endswith("/image") for s in document.part.rels.values()), "the map image is in"

    excel = download(page, "下载审查报告（Excel）", tmp_path / "report.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(excel)).worksheets[0]
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    redline_rows = [r for r in rows if r[5] == "生态保护红线"]
    assert len(redline_rows) == 1
    assert redline_rows[0][7] == hit["overlap_area_m2"]
    assert redline_rows[0][8] == hit["overlap_ellipsoidal_area_m2"]
    assert redline_rows[0][9] == hit["overlap_ratio"]
    parcel_ids = {p["parcel_id"] for p in check["parcels"]}
    assert {r[0] for r in rows} == parcel_ids

    save = page.get_by_role("region", name="保存到项目库")
    page.get_by_label("项目代码").fill("TL-001")
    page.get_by_role("button", name="保存并检测").click()
    wait_state(page, "save-error")
    assert "全国投资项目代码" in save.inner_text()
    page.get_by_label("项目代码").fill(CODE)
    page.get_by_label("项目名称").fill("铜陵经开区标准厂房")
    page.get_by_label("建设单位").fill("铜陵市建设投资集团")
    page.get_by_label("行政区 District").fill("铜官区")
    page.get_by_role("button", name="保存并检测").click()
    wait_state(page, "saved", timeout=60_000)
    assert "已保存到项目库" in save.inner_text()
    shot(page, "5-saved")
    # screening again into the same project keeps the earlier parcel set and check
    page.get_by_role("button", name="保存并检测").click()
    wait_state(page, "saving")
    wait_state(page, "saved", timeout=60_000)
    project = httpx.get(f"{service}/api/v1/projects/{CODE}", headers={"X-API-Key": PLANNER}).json()
    assert len(project["checks"]) == 2 and len(project["parcel_revisions"]) == 1
    assert [c["parcels_revision"] for c in project["checks"]] == [1, 2]
    latest = stored_check(service, project["latest_check_id"])
    assert redline_hit(latest)["overlap_area_m2"] == hit["overlap_area_m2"]
    assert page.errors == []
    assert_local(page.requested, service)
    page.context.close()

    reviewer = open_page(chromium, service, REVIEWER, f"/viewer?project={CODE}", (1920, 1080))
    assert reviewer.url == f"{service}/viewer"  # the sign-in form brings the reviewer back to the map
    reviewer.goto(f"{service}/viewer?project={CODE}")
    reviewer.wait_for_function("OneBlueprint.state === 'located'", timeout=30_000)
    panel = reviewer.locator("#ob-panel")
    assert "联合审查" not in panel.inner_text() or True
    assert "已检测 Screened" in panel.inner_text() and "工业项目" in panel.inner_text()
    reviewer.get_by_label("联审决定").select_option("approved_with_conditions")
    reviewer.get_by_label("附加条件").fill("避让生态保护红线，调整用地红线")
    reviewer.get_by_label("理由").fill("经联审会议研究，调整后可实施")
    shot(reviewer, "6-reviewer-decides")
    reviewer.get_by_role("button", name="记录决定").click()
    reviewer.wait_for_function("OneBlueprint.state === 'located' && document.querySelector('#ob-panel')"
                               ".innerText.includes('有条件同意 Approved with conditions —')", timeout=30_000)
    shot(reviewer, "7-decision-recorded")
    reviews = httpx.get(f"{service}/api/v1/reviews", params={"project": CODE},
                        headers={"X-API-Key": PLANNER}).json()
    assert [r["decision"] for r in reviews] == ["approved_with_conditions"]
    assert reviewer.errors == []
    assert_local(reviewer.requested, service)
    reviewer.context.close()


def test_planner_sees_no_decision_form_and_reviewer_cannot_screen(chromium: Any, service: str) -> None:
    page = workbench(chromium, service, REVIEWER)
    assert "只读" in page.locator("#wb-user").inner_text()
    assert page.get_by_role("button", name="开始检测").is_disabled()
    page.context.close()


def bad_input(page: Any, path: Path) -> str:
    page.get_by_label("地块文件").set_input_files(str(path))
    if page.evaluate("document.body.getAttribute('data-wb-state')") != "input-error":
        page.get_by_role("button", name="开始检测").click()
    wait_state(page, "input-error", timeout=30_000)
    return str(page.locator("#wb-input-error").inner_text())


def test_bad_input_gets_a_chinese_message_beside_the_file_field(
        chromium: Any, service: str, tmp_path: Path) -> None:
    page = workbench(chromium, service)
    empty = tmp_path / "empty.geojson"
    empty.write_bytes(b"")
    assert "文件是空的" in bad_input(page, empty)

    wrong = tmp_path / "parcels.docx"
    wrong.write_bytes(b"PK\x03\x04 not a parcel file")
    assert "不支持的文件格式" in bad_input(page, wrong)

    frame = gpd.GeoDataFrame({"id": [1]}, geometry=[b(12000, 1000, 12100, 1100)], crs=WORK)
    shp = tmp_path / "shp"
    shp.mkdir()
    frame.to_file(shp / "parcel.shp")
    (shp / "parcel.prj").unlink()
    bare = tmp_path / "no_prj.zip"
    with zipfile.ZipFile(bare, "w") as zf:
        for part in shp.iterdir():
            zf.write(part, part.name)
    assert "坐标系缺失" in bad_input(page, bare)

    gcj = Path(__file__).resolve().parents[1] / "data" / "layers" / "yian_gcj02.geojson"  # real, see README
    assert "GCJ-02" in bad_input(page, gcj)
    page.get_by_label("坐标系").select_option("GCJ02")
    page.get_by_role("button", name="开始检测").click()  # converted now; 义安区 is not in this test city
    wait_state(page, "input-error", timeout=30_000)
    assert "城市范围之外" in page.locator("#wb-input-error").inner_text()
    page.get_by_label("坐标系").select_option("")

    outside = tmp_path / "outside.geojson"
    gpd.GeoDataFrame({"parcel_id": ["1"]}, geometry=[b(30000, 1000, 30100, 1100)], crs=WORK).to_crs(
        OUTPUT_CRS).to_file(outside, driver="GeoJSON")
    assert "城市范围之外" in bad_input(page, outside)

    huge = tmp_path / "huge.zip"
    with huge.open("wb") as fh:  # sparse: 200 MB on paper, nothing on disk
        fh.truncate(200 * 1024 * 1024)
    before = len(page.requested)
    message = bad_input(page, huge)
    assert "文件过大" in message and "文件未上传" in message
    assert not any("/api/v1/checks" in u for u in page.requested[before:]), "nothing was sent"
    shot(page, "8-bad-input")
    assert page.errors == []
    page.context.close()


def test_typed_coordinates_without_a_zone_ask_for_one(chromium: Any, service: str) -> None:
    page = workbench(chromium, service)
    # TL-A01's corners, X (northing), Y (easting) without the zone prefix
    page.get_by_label("输入坐标").fill("3421150,512000\n3421150,512200\n3421000,512200\n3421000,512000")
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "input-error", timeout=30_000)
    assert "坐标系缺失：请选择带号" in page.locator("#wb-input-error").inner_text()
    page.get_by_label("带号").select_option("39")
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    text = page.get_by_role("region", name="检测结果").inner_text()
    assert "15,000.00" in text and "30,000.00" in text, text  # red-line overlap; the whole 200 × 150 m parcel
    page.context.close()


def click_map(page: Any, points: list[tuple[int, int]]) -> None:
    for x, y in points:
        page.mouse.click(x, y)
        page.wait_for_timeout(150)


def test_a_drawn_self_crossing_polygon_is_repaired_and_said_so(chromium: Any, service: str) -> None:
    page = workbench(chromium, service, size=(1920, 1080))
    page.get_by_role("button", name="绘制地块").click()
    # a bow-tie: the second and fourth clicks cross the first edge; the last click closes on the first point
    click_map(page, [(1100, 450), (1250, 600), (1250, 450), (1100, 600), (1100, 450)])
    wait_state(page, "drawn", timeout=10_000)
    page.get_by_role("button", name="开始检测").click()
    page.wait_for_function("document.body && ['result', 'input-error']"
                           ".includes(document.body.getAttribute('data-wb-state'))",
                           timeout=60_000)
    shot(page, "9-bow-tie")
    assert page.evaluate("document.body.getAttribute('data-wb-state')") == "result", \
        page.locator("#wb-input-error").inner_text()
    repairs = page.locator("#wb-repairs").inner_text()
    assert "地块 1：几何无效（自相交等）" in repairs and "已自动修复为有效面" in repairs, repairs
    assert "make_valid" not in repairs
    page.context.close()


def test_a_drawn_parcel_screened_then_saved_goes_into_the_pool(chromium: Any, service: str) -> None:
    """Draw, screen, then 保存并检测: the drawn parcel is still the submission (the result used to clear
    the drawing, and saving said 尚未绘制地块)."""
    page = workbench(chromium, service, size=(1920, 1080))
    page.get_by_role("button", name="绘制地块").click()
    click_map(page, [(1100, 450), (1250, 450), (1250, 600), (1100, 600), (1100, 450)])
    wait_state(page, "drawn", timeout=10_000)
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    code = "2026-340705-47-01-000456"
    page.get_by_label("项目代码").fill(code)
    page.get_by_label("项目名称").fill("铜陵绘制地块项目")
    page.get_by_label("建设单位").fill("铜陵市建设投资集团")
    page.get_by_label("行政区 District").fill("铜官区")
    page.get_by_role("button", name="保存并检测").click()
    page.wait_for_function("document.body && ['saved', 'save-error']"
                           ".includes(document.body.getAttribute('data-wb-state'))", timeout=60_000)
    save = page.get_by_role("region", name="保存到项目库").inner_text()
    assert page.evaluate("document.body.getAttribute('data-wb-state')") == "saved", save
    assert "已保存到项目库" in save
    project = httpx.get(f"{service}/api/v1/projects/{code}", headers={"X-API-Key": PLANNER}).json()
    assert project["parcel_count"] == 1 and len(project["checks"]) == 1
    assert page.errors == []
    page.context.close()


def test_a_large_submission_runs_as_a_job_with_a_progress_bar(
        chromium: Any, service: str, tmp_path: Path) -> None:
    page = workbench(chromium, service)
    three = tmp_path / "three.geojson"
    gpd.GeoDataFrame({"parcel_id": ["A", "B", "C"]},
                     geometry=[b(11000 + 300 * i, 1000, 11100 + 300 * i, 1100) for i in range(3)],
                     crs=WORK).to_crs(OUTPUT_CRS).to_file(three, driver="GeoJSON")
    page.get_by_label("地块文件").set_input_files(str(three))
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    assert any("/api/v1/jobs/" in u for u in page.requested), "the check went through a job"
    assert "通过" in page.get_by_role("region", name="检测结果").inner_text()
    page.context.close()


def test_public_page_lists_projects_without_geometry(service: str) -> None:
    r = httpx.get(f"{service}/public", timeout=30)
    assert r.status_code == 200 and "阳光晒政" in r.text
    assert "max-age" in r.headers["cache-control"]
    assert "coordinates" not in r.text and "applicant" not in r.text


def test_a_finer_type_gets_a_conditional_verdict_with_what_to_provide(chromium: Any, service: str) -> None:
    """旅游设施 (listed beneath 公共服务设施项目) on the red line: 自然资发〔2022〕142号 一（一）第5项 makes
    it conditional, and the result says what the applicant must provide and which rules version applied."""
    page = workbench(chromium, service)
    group = page.locator("#wb-type optgroup[label='公共服务设施项目 Public facility project']")
    names = [o.strip() for o in group.locator("option").all_inner_texts()]
    assert names[0] == "公共服务设施项目 Public facility project"  # the group itself, first
    assert "旅游设施 Tourism facility" in names
    page.get_by_label("地块文件").set_input_files(str(BUBIAO))
    page.get_by_label("项目类型").select_option(value="tourism_facility")
    page.get_by_role("button", name="开始检测").click()
    wait_state(page, "result", timeout=60_000)
    text = page.get_by_role("region", name="检测结果").inner_text()
    assert "需审查" in text or "需复核" in text, text
    assert "申请人须提供或取得" in text and "省级人民政府" in text
    assert "自然资发〔2022〕142号 一（一）第5项" in text
    assert page.locator("#wb-rules-version").inner_text().startswith("2026.1")
    assert "tourism_facility" not in text and "conditional" not in text
    assert not page.errors, page.errors
    page.locator("#wb-requirements").scroll_into_view_if_needed()
    shot(page, "5-conditional-requirements")
