"""OGC API – Features at /ogc: Part 1 (paging, 400s, OpenAPI 3.0), Part 2 (CRS), Part 3 (CQL2), Basic auth."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest
from pyproj import Transformer
from shapely.geometry import shape

from tests.api.conftest import PASS_PARCEL, Api, collection, national_code, rect
from tests.api.test_service import assert_error
from tests.geoms import X0, Y0

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"


def test_landing_and_conformance(city: Api) -> None:
    landing = city.get("reviewer", "/ogc").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = city.get("reviewer", "/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf


def test_collections_cover_versions_conflicts_layers_and_parcels(city: Api) -> None:
    body = city.get("planner", "/ogc/collections", params={"f": "json"}).json()
    ids = {c["id"] for c in body["collections"]}
    assert {
        "blueprint-v1-pieces",
        "blueprint-v1-conflicts",
        "layer-ecological_redline",
        "project-parcels",
    } <= ids
    pieces = next(c for c in body["collections"] if c["id"] == "blueprint-v1-pieces")
    west, south, east, north = pieces["extent"]["spatial"]["bbox"][0]
    assert 116.9 < west < east < 117.1 and 30.8 < south < north < 31.0
    assert pieces["itemType"] == "feature" and pieces["storageCrs"].endswith("/4548")
    assert any(link["rel"] == "items" and link["type"] == "application/geo+json" for link in pieces["links"])
    assert_error(city.get("planner", "/ogc/collections/nothing"), 404, "collection_not_found")


def test_items_page_through_with_next_links(city: Api) -> None:
    first = city.get("approval_system", "/ogc/collections/blueprint-v1-pieces/items", params={"limit": 1})
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/geo+json")
    page = first.json()
    total = page["numberMatched"]
    assert total >= 3 and page["numberReturned"] == 1 and page["type"] == "FeatureCollection"
    seen = [page["features"][0]["id"]]
    while nxt := next((link["href"] for link in page["links"] if link["rel"] == "next"), None):
        url = urlparse(nxt)
        assert parse_qs(url.query)["limit"] == ["1"]
        page = city.get("approval_system", url.path + "?" + url.query).json()
        seen.extend(f["id"] for f in page["features"])
    assert len(seen) == total == len(set(seen))
    feature = city.get("approval_system", f"/ogc/collections/blueprint-v1-pieces/items/{seen[0]}").json()
    assert feature["type"] == "Feature" and feature["id"] == seen[0]
    assert {"kind", "kinds", "area_m2"} <= set(feature["properties"])
    props = feature["properties"]  # the stored ellipsoidal area, a number within 0.2 % of the plane area
    assert isinstance(props["ellipsoidal_area_m2"], float)
    assert abs(props["ellipsoidal_area_m2"] / props["area_m2"] - 1) < 2e-3
    lon, lat = shape(feature["geometry"]).representative_point().coords[0]
    assert 116.9 < lon < 117.1 and 30.8 < lat < 31.0
    assert_error(
        city.get("planner", "/ogc/collections/blueprint-v1-pieces/items/NOPE"), 404, "feature_not_found"
    )


def test_bbox_filter(city: Api) -> None:
    everything = city.get("planner", "/ogc/collections/blueprint-v1-pieces/items").json()
    # a small box in the red line (x 100-200 m) only touches red-line pieces
    from pyproj import Transformer

    to84 = Transformer.from_crs(4548, 4326, always_xy=True)
    r = rect(100, 100, 200, 200).bounds
    w, s, e, n = to84.transform_bounds(*r)
    boxed = city.get(
        "planner", "/ogc/collections/blueprint-v1-pieces/items", params={"bbox": f"{w},{s},{e},{n}"}
    ).json()
    assert 1 <= boxed["numberMatched"] < everything["numberMatched"]
    assert all(f["properties"]["kind"] == "ecological_redline" for f in boxed["features"])
    assert_error(
        city.get("planner", "/ogc/collections/blueprint-v1-pieces/items", params={"bbox": "a,b,c,d"}),
        400,
        "invalid_parameter",
    )
    assert_error(
        city.get("planner", "/ogc/collections/blueprint-v1-pieces/items", params={"bbox": "0,95,1,96"}),
        400,
        "invalid_parameter",
    )


def test_conflicts_layers_and_parcels_are_served(city: Api) -> None:
    conflicts = city.get("reviewer", "/ogc/collections/blueprint-v1-conflicts/items").json()
    assert conflicts["numberMatched"] >= 1
    assert conflicts["features"][0]["properties"]["winner"] == "permanent_farmland"
    layer = city.get("reviewer", "/ogc/collections/layer-urban_boundary/items").json()
    assert layer["numberMatched"] == 1
    code = national_code()
    city.post(
        "planner",
        "/api/v1/projects",
        json={
            "code": code,
            "name": "n",
            "project_type": "industrial",
            "applicant": "a",
            "district": "d",
            "parcels": collection(PASS_PARCEL),
        },
    )
    parcels = city.get("reviewer", "/ogc/collections/project-parcels/items", params={"limit": 10_000}).json()
    assert f"{code}:1" in {f["id"] for f in parcels["features"]}
    assert_error(
        city.get("reviewer", "/ogc/collections/project-parcels/items", params={"limit": 0}),
        400,
        "invalid_parameter",
    )


def test_project_parcels_of_an_empty_pool_are_an_empty_page(fresh: Api) -> None:
    """No project yet: the parcels collection is an empty FeatureCollection, not a 500."""
    for params in ({}, {"bbox": "116,30,118,32"}):
        r = fresh.get("reviewer", "/ogc/collections/project-parcels/items", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["features"] == [] and page["numberMatched"] == 0 and page["numberReturned"] == 0
        assert not any(link["rel"] == "next" for link in page["links"])
    missing = fresh.get("reviewer", "/ogc/collections/project-parcels/items/P-1:1")
    assert_error(missing, 404, "feature_not_found")


# ---------------------------------------------------------------- HTTP Basic (QGIS auth manager, GDAL USERPWD


def basic(user: str, password: str) -> dict[str, str]:
    """The header QGIS's Basic authentication method and curl's --user send."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")}


def test_basic_auth_takes_the_key_as_password(city: Api) -> None:
    ok = city.client.get("/ogc/collections", headers=basic("qgis", city.keys["reviewer"]))
    assert ok.status_code == 200, ok.text
    assert "blueprint-v1-pieces" in {c["id"] for c in ok.json()["collections"]}
    # the user name is free, the key decides the role: a reviewer may not build a blueprint
    items = city.client.get(
        "/ogc/collections/blueprint-v1-pieces/items", headers=basic("", city.keys["approval_system"])
    )
    assert items.status_code == 200 and items.json()["numberMatched"] >= 3
    denied = city.client.post("/api/v1/blueprints", json={}, headers=basic("x", city.keys["reviewer"]))
    assert_error(denied, 403, "forbidden")


def test_basic_auth_with_a_wrong_password_is_refused_with_a_basic_challenge(city: Api) -> None:
    wrong = city.client.get("/ogc/collections", headers=basic("qgis", "not-a-key"))
    assert_error(wrong, 401, "invalid_api_key")
    assert wrong.headers["www-authenticate"].startswith('Basic realm="One Blueprint"')
    missing = city.client.get("/ogc/collections/blueprint-v1-pieces/items")
    assert_error(missing, 401, "unauthenticated")
    assert missing.headers["www-authenticate"].startswith("Basic realm=")
    garbled = city.client.get("/ogc", headers={"Authorization": "Basic %%%not-base64"})
    assert_error(garbled, 401, "unauthenticated")
    # outside /ogc no Basic challenge: a browser must not pop up a password dialog over the viewer
    api = city.client.get("/api/v1/layers")
    assert_error(api, 401, "unauthenticated")
    assert "Basic" not in api.headers["www-authenticate"]


# ---------------------------------------------------------------- Part 1: API definition, 400s, paging


def test_openapi_30_document_has_the_items_path_gdal_and_qgis_read(city: Api) -> None:
    landing = city.get("reviewer", "/ogc").json()
    desc = next(link for link in landing["links"] if link["rel"] == "service-desc")
    assert desc["type"] == "application/vnd.oai.openapi+json;version=3.0"
    r = city.get("reviewer", urlparse(desc["href"]).path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc = r.json()
    assert doc["openapi"].startswith("3.0.") and doc["servers"][0]["url"].endswith("/ogc")
    parameters = doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    resolved = [doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] for p in parameters]
    limit = next(p for p in resolved if p["name"] == "limit")
    assert limit["in"] == "query" and limit["schema"]["maximum"] >= 1_000
    assert limit["schema"]["default"] >= 1_000  # GDAL >= 3.8 and QGIS take their page size from these
    langs = next(p for p in resolved if p["name"] == "filter-lang")["schema"]["enum"]
    assert "cql2-text" in langs and "cql-text" in langs  # cql-text: the name GDAL's driver sends
    conf = city.get("reviewer", "/ogc/conformance").json()["conformsTo"]
    for cls in ("ogcapi-features-1/1.0/conf/oas30", "ogcapi-features-2/1.0/conf/crs",
                "ogcapi-features-3/1.0/conf/filter", "cql2/1.0/conf/cql2-text",
                "cql2/1.0/conf/basic-spatial-functions"):
        assert f"http://www.opengis.net/spec/{cls}" in conf


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "abc"},
        {"limit": "10001"},
        {"offset": "-1"},
        {"bbox": "1,2,3"},
        {"bbox": "a,b,c,d"},
        {"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
        {"bbox": "117,30.9,117.01,30.91", "bbox-crs": "EPSG:99999"},
        {"filter": "kind = "},
        {"filter": "kind = 'x'", "filter-lang": "cql2-json"},
        {"filter": "nosuchproperty = 1"},
        {"filter": "area_m2 > 'big'"},
        {"filter": "T_AFTER(built, TIMESTAMP('2020-01-01T00:00:00Z'))"},
        {"filter": " AND ".join(["kind = 'a'"] * 600)},  # too deep to evaluate: a 400, never a 500
        {"filter": "kind = 'x' " * 3000},
        {"unknown_param": "1"},
        {"f": "html"},
    ],
)
def test_bad_parameters_answer_400_with_code_and_detail(city: Api, params: dict[str, str]) -> None:
    r = city.get("planner", "/ogc/collections/blueprint-v1-pieces/items", params=params)
    assert_error(r, 400, "invalid_parameter")


def test_paging_reports_matched_returned_and_next_with_a_large_default_page(city: Api) -> None:
    page = city.get("planner", "/ogc/collections/blueprint-v1-pieces/items").json()
    assert page["numberReturned"] == page["numberMatched"] == len(page["features"])
    assert not any(link["rel"] == "next" for link in page["links"])
    two = city.get("planner", "/ogc/collections/blueprint-v1-pieces/items", params={"limit": 2, "offset": 1})
    body = two.json()
    assert body["numberReturned"] == 2 and body["numberMatched"] == page["numberMatched"]
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert "prev" in rels and parse_qs(urlparse(rels["prev"]).query)["offset"] == ["0"]


def test_queryables_and_schema_name_properties_and_geometry_type(city: Api) -> None:
    coll = city.get("reviewer", "/ogc/collections/blueprint-v1-pieces").json()
    rels = {link["rel"]: link for link in coll["links"]}
    assert rels["describedby"]["type"] == "application/schema+json"
    q = city.get("reviewer", urlparse(rels["http://www.opengis.net/def/rel/ogc/1.0/queryables"]["href"]).path)
    assert q.status_code == 200 and q.headers["content-type"].startswith("application/schema+json")
    props = q.json()["properties"]
    assert props["kind"]["type"] == "string" and props["area_m2"]["type"] == "number"
    assert props["geometry"]["format"] in ("geometry-polygon", "geometry-multipolygon",
                                           "geometry-polygon-or-multipolygon")
    schema = city.get("reviewer", urlparse(rels["describedby"]["href"]).path).json()
    assert schema["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
    assert "kind" in schema["properties"]["properties"]["properties"]
    assert_error(city.get("reviewer", "/ogc/collections/nothing/queryables"), 404, "collection_not_found")


# ---------------------------------------------------------------- Part 2: CRS


def test_collections_list_crs84_cgcs2000_and_the_working_gk_with_storage_crs(city: Api) -> None:
    coll = city.get("reviewer", "/ogc/collections/blueprint-v1-pieces").json()
    assert coll["crs"][0] == CRS84
    assert {CRS84, EPSG.format(4490), EPSG.format(4548)} <= set(coll["crs"])
    assert coll["storageCrs"] == EPSG.format(4548) and coll["storageCrs"] in coll["crs"]


def test_crs_parameter_reprojects_in_the_axis_order_of_the_crs(city: Api) -> None:
    path = "/ogc/collections/blueprint-v1-pieces/items"
    default = city.get("reviewer", path, params={"limit": 1})
    assert default.headers["content-crs"] == f"<{CRS84}>"
    fid = default.json()["features"][0]["id"]
    lon, lat = shape(default.json()["features"][0]["geometry"]).representative_point().coords[0]
    assert 116.9 < lon < 117.1 and 30.8 < lat < 31.0
    for crs in (EPSG.format(4548), "EPSG:4548", "urn:ogc:def:crs:EPSG::4548"):
        gk = city.get("reviewer", path, params={"limit": 1, "crs": crs})
        assert gk.status_code == 200, gk.text
        assert gk.headers["content-crs"] == f"<{EPSG.format(4548)}>"
        ring = gk.json()["features"][0]["geometry"]["coordinates"][0]
        # EPSG:4548 is northing first (X north, Y east), as Part 2 requires
        assert all(Y0 <= north <= Y0 + 1_000 and X0 <= east <= X0 + 2_000 for north, east in ring)
    one = city.get("reviewer", f"{path}/{fid}", params={"crs": EPSG.format(4490)})
    assert one.headers["content-crs"] == f"<{EPSG.format(4490)}>"
    lat2, lon2 = shape(one.json()["geometry"]).representative_point().coords[0]
    assert 30.8 < lat2 < 31.0 and 116.9 < lon2 < 117.1  # EPSG:4490 is latitude first


def test_bbox_crs_is_honoured_in_its_axis_order(city: Api) -> None:
    path = "/ogc/collections/blueprint-v1-pieces/items"
    red = rect(100, 100, 200, 200).bounds  # inside the red line only
    gk = {"bbox": f"{red[1]},{red[0]},{red[3]},{red[2]}", "bbox-crs": EPSG.format(4548)}
    hits = city.get("reviewer", path, params=gk).json()
    assert hits["numberMatched"] >= 1
    assert {f["properties"]["kind"] for f in hits["features"]} == {"ecological_redline"}
    to_ll = Transformer.from_crs(4548, 4490, always_xy=True)
    w, s, e, n = to_ll.transform_bounds(*red)
    lat_lon = city.get("reviewer", path, params={"bbox": f"{s},{w},{n},{e}", "bbox-crs": "EPSG:4490"}).json()
    assert [f["id"] for f in lat_lon["features"]] == [f["id"] for f in hits["features"]]
    # the same numbers read as lon/lat (CRS84) put latitude 117°: refused, not silently empty
    assert_error(city.get("reviewer", path, params={"bbox": f"{s},{w},{n},{e}"}), 400, "invalid_parameter")


# ---------------------------------------------------------------- Part 3: CQL2 text filters


def _ids(api: Api, **params: str) -> set[str]:
    r = api.get("reviewer", "/ogc/collections/blueprint-v1-pieces/items", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == body["numberReturned"] == len(body["features"])
    return {f["id"] for f in body["features"]}


def test_cql2_comparison_and_or_not_like_in(city: Api) -> None:
    everything = city.get("reviewer", "/ogc/collections/blueprint-v1-pieces/items").json()["features"]
    kind = {f["id"]: f["properties"]["kind"] for f in everything}
    area = {f["id"]: f["properties"]["area_m2"] for f in everything}
    red = {i for i, k in kind.items() if k == "ecological_redline"}
    farm = {i for i, k in kind.items() if k == "permanent_farmland"}
    assert red and farm
    assert _ids(city, filter="kind = 'ecological_redline'") == red
    assert _ids(city, filter="kind = 'ecological_redline' OR kind = 'permanent_farmland'") == red | farm
    big = {i for i, a in area.items() if a > 100_000}
    assert _ids(city, filter="kind <> 'ecological_redline' AND area_m2 > 100000") == big - red
    assert _ids(city, filter="NOT (kind = 'ecological_redline')") == set(kind) - red
    assert _ids(city, filter="kind LIKE 'eco%'") == red
    assert _ids(city, filter="kind IN ('permanent_farmland', 'ecological_redline')") == red | farm
    assert _ids(city, filter='("kind" = \'ecological_redline\')', **{"filter-lang": "cql-text"}) == red


def test_cql2_s_intersects_with_crs84_and_filter_crs(city: Api) -> None:
    to84 = Transformer.from_crs(4548, 4326, always_xy=True)
    poly = rect(1500, 400, 1600, 500)  # inside the urban boundary only
    ll = ", ".join(f"{x} {y}" for x, y in zip(*to84.transform(*poly.exterior.xy), strict=True))
    urban = _ids(city, filter=f"S_INTERSECTS(geometry, POLYGON(({ll})))")
    assert urban and urban == _ids(city, filter="kind = 'urban_boundary'") & urban
    gk = ", ".join(f"{y} {x}" for x, y in poly.exterior.coords)  # EPSG:4548: northing first
    in_gk = {"filter-crs": "EPSG:4548"}
    assert _ids(city, filter=f"S_INTERSECTS(geometry, POLYGON(({gk})))", **in_gk) == urban
    w, s, e, n = to84.transform_bounds(*poly.bounds)
    both = _ids(city, filter=f"S_INTERSECTS(geometry, BBOX({w},{s},{e},{n})) AND kind = 'urban_boundary'")
    assert both == urban
    assert _ids(city, filter=f"S_INTERSECTS(geometry, POINT({w - 1} {s - 1}))") == set()
