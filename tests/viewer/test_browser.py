"""End-to-end in real headless Chromium (Playwright, Debian's /usr/bin/chromium) against a live uvicorn.

The test app mounts the viewer router over the in-memory demo source and *fakes* the four
/api/v1 JSON endpoints the page calls (projects search, project, location, check), shaped as
``viewer.source.API_CONTRACT`` describes; the real API provides them in production.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from shapely.geometry import mapping

from tests.serving import serving
from tests.viewer.conftest import (
    CHROMIUM,
    CONFLICT,
    DEMO_PROJECT,
    PARCEL,
    MemorySource,
    b,
    demo_check,
    make_app,
    to_4326,
)

pytestmark = pytest.mark.browser
CONFLICT_LATLON = to_4326(CONFLICT.centroid)["coordinates"]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


# a second project, far from the first, with no check yet; DELAY slows one project's answer down
SECOND = {"code": "TL-2026-002", "name": "铜陵滨江物流园", "project_type": "logistics", "applicant": "-",
          "district": "铜官区", "status": "submitted", "reviews": []}
SECOND_PARCEL = b(600, 600, 700, 700)
DELAY: dict[str, float] = {}


def fake_api(app: FastAPI) -> None:
    """Stand-ins for the API engineer's /api/v1 endpoints (same shapes as the contract)."""
    known = {DEMO_PROJECT["code"]: (DEMO_PROJECT, PARCEL), SECOND["code"]: (SECOND, SECOND_PARCEL)}

    @app.get("/api/v1/projects")
    def projects(q: str = "") -> dict[str, Any]:
        hits = [p for p, _ in known.values() if q in p["code"] or q in p["name"]]
        items = [{k: p[k] for k in ("code", "name", "project_type", "status")} for p in hits]
        return {"items": items, "total": len(items)}

    @app.get("/api/v1/projects/{code}")
    def project(code: str) -> dict[str, Any]:
        if code not in known:
            raise HTTPException(404)
        time.sleep(DELAY.get(code, 0.0))
        return known[code][0]

    @app.get("/api/v1/projects/{code}/location")
    def location(code: str) -> dict[str, Any]:
        parcel = known[code][1] if code in known else PARCEL
        geometry = to_4326(parcel)
        xs = [c[0] for c in geometry["coordinates"][0]]
        ys = [c[1] for c in geometry["coordinates"][0]]
        return {"code": code, "centroid": mapping(parcel.centroid)["coordinates"],
                "bbox": [min(xs), min(ys), max(xs), max(ys)], "geometry": geometry}

    @app.get("/api/v1/checks/{check_id}")
    def check(check_id: str) -> dict[str, Any]:
        return demo_check()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = make_app(MemorySource())
    fake_api(app)
    with serving(app) as base:
        yield base



@pytest.fixture()
def page(chromium: Any, base_url: str) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.requested = []  # every URL the page asks for, to prove nothing leaves localhost
    page.on("request", lambda request: page.requested.append(request.url))
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    sign_in(page, base_url)
    yield page
    context.close()


def sign_in(page: Any, base_url: str) -> None:
    """Through the login form, as a person would: it sets the HttpOnly blueprint_key cookie."""
    page.goto(f"{base_url}/viewer")  # no key yet: redirected to the form
    assert page.url == f"{base_url}/viewer/login"
    page.fill("#key", "meeting-room-key")
    page.click("button[type=submit]")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    assert page.url == f"{base_url}/viewer"
    cookie = next(c for c in page.context.cookies() if c["name"] == "blueprint_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == "", "the key is not readable by scripts"


def assert_local(urls: list[str], base_url: str) -> None:
    outside = [u for u in urls if not u.startswith((base_url + "/", "data:", "blob:"))]
    assert outside == [], f"requests left localhost: {outside}"


def test_page_opens_on_the_city_with_the_three_zones_three_lines_drawn(page: Any, base_url: str) -> None:
    page.requested.clear()  # this opening only, not the sign-in's
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    lines_and_zones = ["ecological_redline", "permanent_farmland", "urban_boundary",
                       "urban_space", "agricultural_space", "ecological_space"]
    page.wait_for_function(
        "keys => keys.every(k => (OneBlueprint.drawn[k] || 0) > 0)", arg=lines_and_zones, timeout=20_000)
    page.wait_for_load_state("networkidle")
    # one MVT request per view cell, carrying every layer: the canvases list the layers they drew
    drawn_layers = page.evaluate("""() => [...document.querySelectorAll('canvas.ob-tile')]
        .flatMap(c => (c.getAttribute('data-layers') || '').split(' '))""")
    for key in lines_and_zones:
        assert key in drawn_layers, key
    tile_requests = [u for u in page.requested if "/viewer/tiles/" in u]
    assert tile_requests and all(u.endswith(".mvt") for u in tile_requests)
    assert len(tile_requests) == len(set(tile_requests)) == page.locator("canvas.ob-tile").count()
    # ink on the canvas, not just canvases: the red-line colour is on some tile
    red = page.evaluate("OneBlueprint.kinds.ecological_redline.colour")
    inked = page.evaluate("""(hex) => { const want = [1, 3, 5].map(i => parseInt(hex.substr(i, 2), 16));
        return [...document.querySelectorAll('canvas.ob-tile')].some(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] > 0 && Math.abs(d[i] - want[0]) < 90 && Math.abs(d[i + 1] - want[1]) < 90
              && Math.abs(d[i + 2] - want[2]) < 90 && d[i] !== d[i + 1]) return true;
        }
        return false; }); }""", red)
    assert inked
    assert page.evaluate("OneBlueprint.drawn.geohazard_zone || 0") == 0, "overlays wait to be switched on"
    # the whole city is in view
    city_in_view = page.evaluate("""() => { const b = OneBlueprint.cfg.bounds;
        return OneBlueprint.map.getBounds().contains([[b[1], b[0]], [b[3], b[2]]]); }""")
    assert city_in_view
    # legend Chinese first, layer control, scale bar, measure tool
    legend = page.locator(".ob-legend").inner_text()
    assert "图例 Legend" in legend and "生态保护红线 Ecological protection red line" in legend
    assert page.locator(".leaflet-control-layers-overlays label").count() >= 10
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator(".leaflet-control-measure").count() == 1
    # cursor coordinates in CGCS2000 lon/lat and GK X (northing) / Y (easting)
    page.mouse.move(700, 450)
    page.mouse.move(705, 455)
    coords = page.locator("#ob-coords").inner_text()
    assert "CGCS2000" in coords and "EPSG:4548" in coords
    assert "X(北 N) 34" in coords and "Y(东 E) 50" in coords
    assert page.errors == []
    assert_local(page.requested, base_url)


@pytest.mark.parametrize("width", [1366, 1920])
def test_the_layer_list_leaves_the_top_bar_uncovered(chromium: Any, base_url: str, width: int) -> None:
    """At 1366 × 768 (a common laptop) the open layer list covered the bar's 版本对比 link."""
    context = chromium.new_context(viewport={"width": width, "height": 768})
    page = context.new_page()
    sign_in(page, base_url)
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    bar = page.locator("#ob-bar").bounding_box()
    layers = page.locator(".leaflet-control-layers").bounding_box()
    assert bar and layers and bar["x"] + bar["width"] <= layers["x"], (bar, layers)
    assert page.get_by_role("link", name="版本对比 Compare").is_visible()
    context.close()


def test_clicking_the_map_tells_what_the_blueprint_says_there(page: Any, base_url: str) -> None:
    page.wait_for_function("(OneBlueprint.drawn.ecological_redline || 0) > 0", timeout=20_000)
    # a point in the red-line strip (x = X0 - 700 m), found through the map's own projection
    point = page.evaluate("""() => { const c = OneBlueprint.cfg.bounds;
        const ll = L.latLng((c[1] + c[3]) / 2, c[0] + (c[2] - c[0]) * 0.15);
        return OneBlueprint.map.latLngToContainerPoint(ll); }""")
    page.mouse.click(point["x"], point["y"])
    popup = page.locator(".ob-identify")
    popup.wait_for(timeout=10_000)
    assert "生态保护红线 Ecological protection red line" in popup.inner_text()
    assert_local(page.requested, base_url)


def test_clicking_a_conflict_names_both_plans_and_the_resolution(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/viewer?version=v1")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    page.locator(".leaflet-control-layers-overlays label", has_text="规划冲突").locator("input").check()
    page.wait_for_function("(OneBlueprint.drawn.conflicts || 0) > 0", timeout=20_000)
    point = page.evaluate(f"""() => {{ const ll = L.latLng({CONFLICT_LATLON[1]}, {CONFLICT_LATLON[0]});
        return OneBlueprint.map.latLngToContainerPoint(ll); }}""")
    page.mouse.click(point["x"], point["y"])
    popup = page.locator(".ob-identify .ob-conflict")
    popup.wait_for(timeout=10_000)
    text = popup.inner_text()
    for expected in ("C000001", "永久基本农田", "城镇开发边界", "农田 2025", "城镇 2025", "永久基本农田优先"):
        assert expected in text, expected
    assert_local(page.requested, base_url)


def test_measuring_an_area(page: Any, base_url: str) -> None:
    """leaflet-measure (served here) measures a triangle drawn on the map: length and area shown."""
    page.hover(".leaflet-control-measure")  # expands on hover (the toggle then hides)
    page.click(".leaflet-control-measure .js-start")
    for x, y in ((600, 300), (800, 300), (700, 500)):
        page.mouse.click(x, y)
        page.wait_for_timeout(150)
    page.click(".leaflet-control-measure .js-finish")
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5_000)
    text = popup.inner_text()
    assert "面积测量" in text and "公顷" in text, text  # area measurement, in hectares (cn localisation)
    assert page.errors == []
    assert_local(page.requested, base_url)


def test_switching_on_conflicts_draws_them(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/viewer?version=v1")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    page.locator(".leaflet-control-layers-overlays label", has_text="规划冲突").locator("input").check()
    page.wait_for_function("(OneBlueprint.drawn.conflicts || 0) > 0", timeout=20_000)
    assert "规划冲突" in page.locator(".ob-legend").inner_text()
    assert_local(page.requested, base_url)


def test_search_flies_to_the_project_and_shows_its_panel(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    start_zoom = page.evaluate("OneBlueprint.map.getZoom()")
    page.fill("#ob-search", "TL-2026-001")
    page.press("#ob-search", "Enter")
    page.wait_for_function("OneBlueprint.state === 'located'", timeout=20_000)
    page.wait_for_timeout(1500)  # let the fly animation finish
    panel = page.locator("#ob-panel")
    assert panel.is_visible()
    text = panel.inner_text()
    for expected in ("铜陵新材料产业园一期", "冲突 Conflict", "v1", "生态保护红线", "永久基本农田",
                     "地块占用生态保护红线", "不同意 Rejected", "审查报告（网页） Report"):
        assert expected in text, expected
    assert page.locator("path.ob-parcel").count() >= 1
    assert page.locator("path.ob-overlap-ecological_redline").count() >= 1
    assert page.locator("path.ob-overlap-permanent_farmland").count() >= 1
    assert page.evaluate("OneBlueprint.map.getZoom()") > start_zoom
    parcel_in_view = page.evaluate("""() => OneBlueprint.map.getBounds().contains(
        OneBlueprint.highlight.getBounds())""")
    assert parcel_in_view
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-project.png"))
    assert page.errors == []
    assert_local(page.requested, base_url)


def test_one_request_per_view_cell_and_a_fly_to_stays_under_30(page: Any, base_url: str) -> None:
    page.requested.clear()
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.tilesIdle === true", timeout=20_000)
    opening = [u for u in page.requested if "/viewer/tiles/" in u]
    assert 0 < len(opening) <= 30 and all(u.split("?")[0].endswith(".mvt") for u in opening)
    page.requested.clear()
    page.fill("#ob-search", SECOND["code"])
    page.press("#ob-search", "Enter")
    page.wait_for_function("OneBlueprint.state === 'located'", timeout=20_000)
    page.wait_for_timeout(1200)  # the flight
    page.wait_for_function("OneBlueprint.tilesIdle === true", timeout=20_000)
    flight = [u for u in page.requested if "/viewer/tiles/" in u]
    assert 0 < len(flight) <= 30, len(flight)
    assert page.evaluate("OneBlueprint.map.getZoom()") >= 15  # it went down to the parcel
    assert page.errors == []
    assert_local(page.requested, base_url)


def test_a_fly_to_cancels_the_tile_loads_still_pending(page: Any, base_url: str) -> None:
    held: list[Any] = []  # tile requests the "server" never answers: they stay pending in the page

    holding = [True]

    def hold(route: Any) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    page.route("**/viewer/tiles/**", hold)
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    page.wait_for_function("document.querySelectorAll('canvas.ob-tile').length > 0")
    page.wait_for_timeout(300)
    assert held, "the opening view asked for tiles"
    holding[0] = False  # tiles asked for from now on are answered
    page.fill("#ob-search", SECOND["code"])
    page.press("#ob-search", "Enter")
    page.wait_for_function("OneBlueprint.state === 'located'", timeout=20_000)
    assert page.evaluate("OneBlueprint.aborted") == len(held)  # every pending load was cancelled
    page.wait_for_timeout(1200)
    page.wait_for_function("OneBlueprint.tilesIdle === true", timeout=20_000)
    assert page.evaluate("(OneBlueprint.drawn.urban_space || 0) > 0")  # the new view is drawn
    for route in held:
        try:
            route.abort()
        except Exception:  # already gone with the cancelled fetch
            pass


def test_a_newer_search_wins_no_stale_panel(page: Any, base_url: str) -> None:
    """The first project answers slowly; the second is asked for meanwhile: its panel stays."""
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    DELAY[DEMO_PROJECT["code"]] = 1.5
    try:
        # not awaited: both selections are in flight together
        page.evaluate(f"() => {{ OneBlueprint.select('{DEMO_PROJECT['code']}'); }}")
        page.wait_for_timeout(100)
        page.evaluate(f"() => {{ OneBlueprint.select('{SECOND['code']}'); }}")
        page.wait_for_function("OneBlueprint.state === 'located'", timeout=20_000)
        assert page.locator("#ob-panel").get_attribute("data-code") == SECOND["code"]
        page.wait_for_timeout(2500)  # the slow answer for the first project arrives meanwhile
        assert page.locator("#ob-panel").get_attribute("data-code") == SECOND["code"]
        assert "铜陵滨江物流园" in page.locator("#ob-panel").inner_text()
        assert "铜陵新材料产业园一期" not in page.locator("#ob-panel").inner_text()
    finally:
        DELAY.clear()


def test_deep_link_locates_a_project(page: Any, base_url: str) -> None:
    """/viewer?project=CODE is the map side of "locate a project" (the national system links here)."""
    page.goto(f"{base_url}/viewer?project=TL-2026-001")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'located'", timeout=20_000)
    assert "铜陵新材料产业园一期" in page.locator("#ob-panel").inner_text()
    assert page.locator("path.ob-parcel").count() >= 1


def test_search_by_name_and_no_match(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    page.fill("#ob-search", "不存在的项目")
    page.press("#ob-search", "Enter")
    page.wait_for_function("OneBlueprint.state === 'results'")
    assert "无结果 No match" in page.locator("#ob-results").inner_text()
    page.fill("#ob-search", "新材料")
    page.press("#ob-search", "Enter")
    page.wait_for_function("OneBlueprint.state === 'located'", timeout=20_000)
    assert "TL-2026-001" in page.locator("#ob-panel").inner_text()


def test_full_city_screenshot(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    page.wait_for_load_state("networkidle")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-city.png"))
    assert (ARTIFACTS / "viewer-city.png").stat().st_size > 10_000


def test_compare_page_draws_the_changes_offline(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/viewer/compare?a=v1&b=v2")
    page.wait_for_load_state("networkidle")
    assert page.locator("#cmp-map path.leaflet-interactive").count() == 4  # 2 kinds added, 2 removed
    assert page.locator("#cmp-map path.cmp-outline").count() == 1
    assert_local(page.requested, base_url)


def test_report_pdf_is_printed_by_chromium(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/viewer/reports/CHK-0001.pdf", timeout=60) as response:
        assert response.headers["Content-Type"] == "application/pdf"
        body = response.read()
    assert body.startswith(b"%PDF-") and len(body) > 20_000
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-CHK-0001.pdf").write_bytes(body)


def test_report_html_makes_no_request(page: Any, base_url: str) -> None:
    page.requested.clear()  # forget the sign-in and the map
    page.goto(f"{base_url}/viewer/reports/CHK-0001.html")
    page.wait_for_load_state("networkidle")
    assert page.locator("img[alt^='地块']").evaluate("img => img.naturalWidth") > 300
    assert page.requested == [f"{base_url}/viewer/reports/CHK-0001.html"]


def test_panel_lists_what_a_conditional_overlap_requires(page: Any, base_url: str) -> None:
    """The panel's parcel block (parcelHtml) lists each requirement of its conditional overlaps once,
    none of forbidden ones; a check stored before rules versions says so instead of a version."""
    page.goto(f"{base_url}/viewer")
    page.wait_for_function("window.OneBlueprint && OneBlueprint.state === 'ready'")
    out = page.evaluate("""() => {
        const U = OneBlueprint.util;
        const need = {key: "r", zh: "不可避让论证报告", en: "Unavoidability report",
                      basis: "自然资发〔2022〕142号"};
        const parcel = {conflicts: [
            {rule: "conditional", requirements: [need]}, {rule: "conditional", requirements: [need]},
            {rule: "forbidden", requirements: [{key: "x", zh: "不应出现", en: "never"}]}]};
        const needs = U.parcelRequirements(parcel);
        return {keys: needs.map(n => n.key), html: U.requirementsHtml(needs),
                old: U.rulesVersion({}), now: U.rulesVersion({rules: {version: "2026.1",
                                                                      effective_date: "2026-12-01"}})};
    }""")
    assert out["keys"] == ["r"]
    assert "不可避让论证报告" in out["html"] and "自然资发〔2022〕142号" in out["html"]
    assert out["old"].startswith("未记录") and out["now"] == "2026.1（生效 2026-12-01）"
    assert page.errors == []
