"""OGC API – Features at /ogc: landing, conformance, collections, paged GeoJSON items, bbox, single items."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from shapely.geometry import shape

from tests.api.conftest import PASS_PARCEL, Api, collection, national_code, rect
from tests.api.test_service import assert_error


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
        422,
        "invalid_request",
    )
    assert_error(
        city.get("planner", "/ogc/collections/blueprint-v1-pieces/items", params={"bbox": "0,95,1,96"}),
        422,
        "invalid_request",
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
        422,
        "invalid_request",
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
