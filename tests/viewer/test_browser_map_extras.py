"""In headless Chromium: a local basemap under the map, the boundary's names, conflicts seen at city scale.

Served like ``test_browser.py`` (uvicorn on loopback, the faked /api/v1), over the test city with named
districts (``test_labels.WithBoundary``) and one 3 m × 3 m conflict, with a basemap from the synthetic
fixtures in tests/data/basemap.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.serving import serving
from tests.viewer.conftest import b, make_app, to_4326
from tests.viewer.test_basemap import RASTER, VECTOR
from tests.viewer.test_browser import ARTIFACTS, assert_local, fake_api, sign_in
from tests.viewer.test_labels import TinyConflict, WithBoundary
from viewer.basemap import open_basemap

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
TINY = b(600, 600, 603, 603)
CONFLICT_RGB = (0xE7, 0x29, 0x8A)  # the conflicts layer's colour (viewer.page.layer_specs)


class City(TinyConflict, WithBoundary):
    """Named districts and a conflict far below a pixel at the whole-city view."""


def serve(basemap: Path) -> Iterator[str]:
    app = make_app(City(), basemap=open_basemap(str(basemap)))
    fake_api(app)
    with serving(app) as base:
        yield base


@pytest.fixture(scope="module")
def raster_url() -> Iterator[str]:
    yield from serve(RASTER)


@pytest.fixture(scope="module")
def vector_url() -> Iterator[str]:
    yield from serve(VECTOR)



def open_page(chromium: Any, base_url: str) -> Any:
    page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    sign_in(page, base_url)
    page.wait_for_function("document.body.getAttribute('data-ob-tiles') === 'idle'", timeout=20_000)
    return page


def test_a_raster_basemap_draws_from_the_local_file(chromium: Any, raster_url: str) -> None:
    page = open_page(chromium, raster_url)
    page.wait_for_function("(OneBlueprint.basemapDrawn || 0) > 0", timeout=20_000)
    page.wait_for_load_state("networkidle")
    images = page.evaluate("""() => [...document.querySelectorAll('.leaflet-obBasemap-pane img')]
        .map(i => ({src: i.src, w: i.naturalWidth, ok: i.complete}))""")
    loaded = [i for i in images if i["ok"] and i["w"] == 256]
    assert loaded and all(i["src"].startswith(f"{raster_url}/viewer/basemap/") for i in images)
    # outside the city (no blueprint drawn there) the screen shows the tile's own colour, which
    # encodes its XYZ address: the right tile, rows flipped, reached the screen
    corner = page.evaluate("""() => { const m = OneBlueprint.map, b = OneBlueprint.cfg.bounds;
        const ll = L.latLng(b[3] + (b[3] - b[1]) * 0.1, b[0] - (b[2] - b[0]) * 0.1);
        const p = m.latLngToContainerPoint(ll), z = m.getZoom(), n = 1 << z;
        const x = Math.floor((ll.lng + 180) / 360 * n);
        const r = ll.lat * Math.PI / 180;
        const y = Math.floor((1 - Math.asinh(Math.tan(r)) / Math.PI) / 2 * n);
        return {px: p.x, py: p.y, x: x, y: y, z: z}; }""")
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    pixel = shot.getpixel((round(corner["px"]), round(corner["py"])))
    want = (corner["x"] % 256, corner["y"] % 256, 10 * corner["z"])
    assert all(abs(a - w) <= 3 for a, w in zip(pixel, want, strict=True)), (pixel, want)
    ARTIFACTS.mkdir(exist_ok=True)
    shot.save(ARTIFACTS / "viewer-raster-basemap.png")
    assert page.errors == []
    assert_local(page.requested, raster_url)


def test_a_vector_basemap_draws_in_a_neutral_style(chromium: Any, vector_url: str) -> None:
    page = open_page(chromium, vector_url)
    page.wait_for_function("(OneBlueprint.basemapDrawn || 0) > 0", timeout=20_000)
    requested = [u for u in page.requested if "/viewer/basemap/" in u]
    assert requested and all(u.startswith(f"{vector_url}/viewer/basemap/") for u in requested)
    page.screenshot(path=str(ARTIFACTS / "viewer-vector-basemap.png"))
    assert page.errors == []
    assert_local(page.requested, vector_url)


def test_district_names_are_shown_without_overlap(chromium: Any, raster_url: str) -> None:
    page = open_page(chromium, raster_url)
    page.wait_for_function("OneBlueprint.labels && OneBlueprint.labels.length === 3", timeout=20_000)
    for zoom_out in (0, 6):  # the city view, then far out where the names would collide
        if zoom_out:
            page.evaluate(f"OneBlueprint.map.setZoom(OneBlueprint.map.getZoom() - {zoom_out}, "
                          "{animate: false})")
            page.wait_for_timeout(300)
        boxes = page.evaluate("""() => [...document.querySelectorAll('.ob-label')]
            .filter(e => e.style.display !== 'none')
            .map(e => { const r = e.getBoundingClientRect();
                        return [e.textContent, r.left, r.top, r.right, r.bottom]; })""")
        assert boxes, "at least the largest area is named"
        for i, a in enumerate(boxes):
            for c in boxes[i + 1:]:
                assert not (a[1] < c[3] and c[1] < a[3] and a[2] < c[4] and c[2] < a[4]), (a, c)
        if not zoom_out:
            assert {t[0] for t in boxes} == {"铜官区", "义安区", "郊区"}
    assert [t[0] for t in boxes] == ["铜官区"], "far out, only the largest area's name is kept"


def test_a_sub_pixel_conflict_is_outlined_at_city_zoom_and_named_on_click(chromium: Any,
                                                                          raster_url: str) -> None:
    page = open_page(chromium, raster_url)
    page.locator(".leaflet-control-layers-overlays label", has_text="规划冲突").locator("input").check()
    page.wait_for_function("(OneBlueprint.drawn.conflicts || 0) > 0", timeout=20_000)
    lon, lat = to_4326(TINY.centroid)["coordinates"]
    point = page.evaluate(f"""() => {{ const m = OneBlueprint.map;
        return {{p: m.latLngToContainerPoint(L.latLng({lat}, {lon})),
                 metresPerPx: m.distance(m.containerPointToLatLng([0, 0]),
                                         m.containerPointToLatLng([1, 0]))}}; }}""")
    assert 3 / point["metresPerPx"] < 1, "the conflict itself is below a pixel at this zoom"
    x, y = round(point["p"]["x"]), round(point["p"]["y"])
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    ARTIFACTS.mkdir(exist_ok=True)
    zoomed = shot.crop((x - 40, y - 40, x + 40, y + 40)).resize((320, 320))
    zoomed.save(ARTIFACTS / "viewer-conflict-marker.png")
    near = [shot.getpixel((x + dx, y + dy)) for dx in range(-6, 7) for dy in range(-6, 7)]
    magenta = [p for p in near if abs(p[0] - CONFLICT_RGB[0]) < 40 and abs(p[1] - CONFLICT_RGB[1]) < 60
               and abs(p[2] - CONFLICT_RGB[2]) < 50]
    assert len(magenta) >= 8, "the conflict's outline is drawn around its spot"
    page.mouse.click(x + 2, y)
    popup = page.locator(".ob-identify .ob-conflict")
    popup.wait_for(timeout=10_000)
    text = popup.inner_text()
    for expected in ("C000002", "永久基本农田", "城镇开发边界", "农田 2025", "城镇 2025", "优先", "9.0 m²"):
        assert expected in text, expected
    assert_local(page.requested, raster_url)
