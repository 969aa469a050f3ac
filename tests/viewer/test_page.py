"""The /viewer page, login, static assets and auth wiring, through a standalone FastAPI app."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from layers.catalogue import load_catalogue
from tests.viewer.conftest import MemorySource, make_app, signed_in
from viewer.basemap import open_basemap
from viewer.routes import build_router

URL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'<>)]*")


def config_of(html: str) -> dict:
    match = re.search(r"OneBlueprint\.init\(map_\w+, (\{.*\})\);", html)
    assert match, "the page starts the viewer script with its config"
    return json.loads(match.group(1))


def test_page_has_no_external_url(client: TestClient) -> None:
    html = client.get("/viewer").text
    assert URL.findall(html) == []


def test_only_the_configured_basemap_is_external(source: MemorySource) -> None:
    tile_url = "https://t0.example.gov.cn/vec_w/{z}/{x}/{y}.png"
    html = signed_in(make_app(source, basemap=open_basemap(tile_url))).get("/viewer").text
    assert set(URL.findall(html)) == {tile_url}


def test_every_asset_the_page_references_is_served_here(client: TestClient) -> None:
    html = client.get("/viewer").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/viewer/static/leaflet/leaflet.js", "/viewer/static/leaflet/leaflet.css",
            "/viewer/static/leaflet-measure/leaflet-measure.js", "/viewer/static/proj4/proj4.js",
            "/viewer/static/viewer.js", "/viewer/static/viewer.css"} <= set(assets)
    for asset in assets:
        if asset.startswith("/viewer/static/"):
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert response.content


def test_leaflet_images_referenced_by_css_are_served(client: TestClient) -> None:
    for css in ("/viewer/static/leaflet/leaflet.css", "/viewer/static/leaflet-measure/leaflet-measure.css"):
        base = css.rsplit("/", 1)[0]
        for image in re.findall(r"url\(([^)\"']+)\)", client.get(css).text):
            if not image.startswith(("data:", "#")):  # "#default#VML": old-IE behaviour
                assert client.get(f"{base}/{image}").status_code == 200, image


def test_static_refuses_traversal_and_unknown_types(client: TestClient) -> None:
    assert client.get("/viewer/static/../routes.py").status_code == 404
    assert client.get("/viewer/static/%2e%2e/routes.py").status_code == 404
    assert client.get("/viewer/static/LICENSES/leaflet-1.9.4.LICENSE").status_code == 404


def test_config_shows_the_three_zones_three_lines_in_catalogue_colours(client: TestClient) -> None:
    config = config_of(client.get("/viewer").text)
    catalogue = load_catalogue()
    layers = {layer["key"]: layer for layer in config["layers"]}
    for kind in catalogue.values():
        assert layers[kind.key]["colour"] == kind.colour
        assert layers[kind.key]["name_zh"] == kind.name_zh and layers[kind.key]["name_en"] == kind.name_en
        assert layers[kind.key]["on"] is (kind.group in ("line", "zone", "boundary"))
    assert layers["conflicts"]["on"] is False and "conflicts" in layers
    order = [layer["group"] for layer in config["layers"]]
    assert order.index("zone") < order.index("line"), "zones are drawn under the lines"


def test_config_opens_on_the_whole_city_with_the_latest_version(client: TestClient,
                                                                source: MemorySource) -> None:
    config = config_of(client.get("/viewer").text)
    assert config["version"] == "v2"
    assert config["bounds"] == pytest.approx(list(source.city_bounds_4326()))
    assert config["tiles"] == "/viewer/tiles/{version}/{z}/{x}/{y}.mvt"
    assert config["workCrs"]["label"] == "EPSG:4548"
    assert "+proj=tmerc" in config["workCrs"]["proj4"] and "+lon_0=117" in config["workCrs"]["proj4"]


def test_page_picks_a_version_and_rejects_an_unknown_one(client: TestClient) -> None:
    assert config_of(client.get("/viewer?version=v1").text)["version"] == "v1"
    assert client.get("/viewer?version=v9").status_code == 404
    assert config_of(client.get("/viewer?project=TL-2026-001").text)["project"] == "TL-2026-001"
    assert config_of(client.get("/viewer?project=新材料").text)["project"] == "TL-2026-001", "by name"
    assert config_of(client.get("/viewer?project=nothing").text)["project"] == "nothing"


def test_page_has_measure_scale_and_search(client: TestClient) -> None:
    html = client.get("/viewer").text
    assert "L.control.scale" not in html, "folium's imperial+metric bar is replaced by viewer.js's metric one"
    assert "L.Control.Measure" in html and '"localization": "cn"' in html
    assert 'id="ob-search"' in html and 'id="ob-panel"' in html


def test_no_version_yet_still_opens_the_map() -> None:
    source = MemorySource(versions_={})
    source.city_bounds_4326 = lambda: (117.0, 30.8, 118.0, 31.0)  # type: ignore[method-assign]
    response = signed_in(make_app(source)).get("/viewer")
    assert response.status_code == 200 and config_of(response.text)["version"] is None


def test_tile_route(client: TestClient) -> None:
    ok = client.get("/viewer/tiles/v1/urban_space/12/3379/1678.geojson")
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/geo+json"
    assert ok.json()["type"] == "FeatureCollection"
    assert client.get("/viewer/tiles/v9/urban_space/12/3379/1678.geojson").status_code == 404
    assert client.get("/viewer/tiles/v1/nope/12/3379/1678.geojson").status_code == 404
    assert client.get("/viewer/tiles/v1/urban_space/12/99999/1678.geojson").status_code == 404
    assert client.get("/viewer/tiles/v1/urban_space/12/3379/1678.pbf").status_code == 404


def test_login_sets_a_strict_httponly_cookie(client: TestClient) -> None:
    response = client.post("/viewer/login", data={"key": "secret-key"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/viewer"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("blueprint_key=secret-key;")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()


def test_login_form_prefills_the_dev_key_only_in_dev_mode(source: MemorySource) -> None:
    plain = signed_in(make_app(source)).get("/viewer/login").text
    assert 'name="key"' in plain and "dev-mode" not in plain and 'value="dev' not in plain
    dev = signed_in(make_app(source, dev_key="dev-admin-key")).get("/viewer/login").text
    assert 'value="dev-admin-key"' in dev and "开发模式" in dev and "Development mode" in dev


def test_everything_but_assets_and_login_needs_auth(source: MemorySource) -> None:
    def deny() -> None:
        raise HTTPException(status_code=401, detail="no key")

    app = FastAPI()
    app.include_router(build_router(source, deny))
    client = signed_in(app)  # a key that the auth dependency refuses
    paths = ("/viewer", "/viewer/tiles/v1/urban_space/12/3379/1678.geojson", "/viewer/compare?a=v1&b=v2",
             "/viewer/reports/CHK-0001.html", "/viewer/reports/CHK-0001.pdf")
    for path in paths:
        assert client.get(path).status_code == 401, path
    assert client.get("/viewer/login").status_code == 200
    assert client.get("/viewer/static/viewer.js").status_code == 200
    anonymous = TestClient(app)
    for path in ("/viewer", "/viewer/compare", "/viewer/reports/CHK-0001.html"):
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/viewer/login", path
    assert anonymous.get(paths[1]).status_code == 401, "tiles answer machines: a plain 401"


def test_identify_says_what_the_blueprint_says_at_a_point(client: TestClient) -> None:
    from pyproj import Transformer

    from tests.geoms import X0, Y0

    lon, lat = Transformer.from_crs("EPSG:4548", "EPSG:4326", always_xy=True).transform(X0 - 700, Y0)
    body = client.get(f"/viewer/identify/v1?lon={lon}&lat={lat}").json()
    (piece,) = body["pieces"]
    assert piece["kind"] == "ecological_redline"
    assert piece["kinds"] == ["ecological_redline", "ecological_space"]
    assert client.get("/viewer/identify/v1?lon=100&lat=10").json()["pieces"] == []
    assert client.get(f"/viewer/identify/v9?lon={lon}&lat={lat}").status_code == 404
    assert client.get("/viewer/identify/v1?lon=500&lat=10").status_code == 422


def test_a_hostile_project_parameter_cannot_break_out_of_the_script(client: TestClient) -> None:
    plain = client.get("/viewer").text
    html = client.get('/viewer?project=</script><script>alert(1)</script><!--').text
    assert "<script>alert(1)" not in html
    assert html.count("<!--") == plain.count("<!--") and html.count("</script>") == plain.count("</script>")
    assert config_of(html)["project"] == "</script><script>alert(1)</script><!--"
