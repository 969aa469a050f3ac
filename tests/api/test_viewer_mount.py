"""The viewer mounted by create_app at /viewer, reading through viewer.store_source (the cookie signs in)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import REDLINE_PARCEL, Api, collection, national_code
from viewer.source import ViewerSource
from viewer.store_source import StoreViewerSource


def signed_in(city: Api, role: str = "reviewer") -> TestClient:
    client = TestClient(city.app)
    client.cookies.set("blueprint_key", city.keys[role])
    return client


def test_source_satisfies_the_port(city: Api) -> None:
    source = StoreViewerSource(city.services)
    assert isinstance(source, ViewerSource)
    assert source.latest_version() == "v1"
    west, south, east, north = source.city_bounds_4326()
    assert 116.9 < west < east < 117.1 and 30.8 < south < north < 31.0
    assert len(source.pieces("v1")) >= 3 and source.conflicts("v1").crs.to_epsg() == 4548
    assert source.check("nope") is None and source.project_for_check("nope") is None


def test_project_for_check_and_search(city: Api) -> None:
    code = national_code()
    r = city.post(
        "planner",
        "/api/v1/projects",
        json={
            "code": code,
            "name": "红线内项目",
            "project_type": "industrial",
            "applicant": "a",
            "district": "d",
            "parcels": collection(REDLINE_PARCEL),
        },
    )
    assert r.status_code == 201
    check_id = city.post("planner", f"/api/v1/projects/{code}/checks").json()["check_id"]
    city.post(
        "reviewer",
        f"/api/v1/projects/{code}/reviews",
        json={"decided_by": "联审会", "decision": "rejected", "reasons": "红线"},
    )
    source = StoreViewerSource(city.services)
    project = source.project_for_check(check_id)
    assert project is not None and project["code"] == code
    assert project["parcels"]["features"][0]["id"] == "1"
    assert project["reviews"][0]["decision"] == "rejected"
    assert source.check(check_id)["check_id"] == check_id
    assert [p["code"] for p in source.search_projects(code)] == [code]


def test_viewer_pages_behind_the_cookie(city: Api) -> None:
    anonymous = TestClient(city.app, follow_redirects=False)
    assert anonymous.get("/viewer/login").status_code == 200
    assert anonymous.get("/viewer").status_code in (303, 307, 401)
    client = signed_in(city)
    page = client.get("/viewer")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    bad = TestClient(city.app)
    bad.cookies.set("blueprint_key", "obk_x_y")
    assert bad.get("/viewer/tiles/v1/ecological_redline/0/0/0.geojson").status_code == 401
