"""Red-team findings of issue #16, each reproduced against the API before it was fixed.

Every test here failed on main at 5dcf82c (see the commit messages for the failures) and names the
defect it covers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from shapely.geometry import mapping

from tests.api.conftest import PASS_PARCEL, REDLINE_PARCEL, Api, collection, unique
from tests.api.test_service import assert_error


def _post_json_text(city: Api, text: str, role: str = "approval_system", **headers: str) -> Any:
    return city.client.post(
        "/api/v1/checks", content=text.encode(),
        headers={**city.h(role), "content-type": "application/json", **headers},
    )


def _body(parcels: dict[str, Any]) -> dict[str, Any]:
    return {"project_type": "industrial", "parcels": parcels}


# --------------------------------------------------------------- defect 3: NaN / Infinity / 1e400


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_coordinates_are_refused_in_json(city: Api, token: str) -> None:
    """A NaN vertex used to be dropped: the area halved and the verdict was pass."""
    body = _body(collection(REDLINE_PARCEL))
    ring = body["parcels"]["features"][0]["geometry"]["coordinates"][0]
    ring[1][0] = "__BAD__"
    text = json.dumps(body).replace('"__BAD__"', token)
    r = _post_json_text(city, text)
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] in ("invalid_request", "non_finite_coordinates"), r.text


@pytest.mark.parametrize("token", ["NaN", "Infinity", "1e400"])
def test_non_finite_coordinates_are_refused_in_uploads(city: Api, token: str) -> None:
    parcels = collection(REDLINE_PARCEL)
    parcels["features"][0]["geometry"]["coordinates"][0][1][0] = "__BAD__"
    data = json.dumps(parcels).replace('"__BAD__"', token).encode()
    r = city.post("planner", "/api/v1/checks", files={"file": ("p.geojson", data, "application/geo+json")},
                  data={"project_type": "industrial"})
    assert r.status_code == 422, r.text  # GDAL itself refuses 1e400 as unreadable; NaN used to pass
    assert r.json()["code"] in ("non_finite_coordinates", "unreadable_file"), r.text


def test_non_finite_coordinates_are_refused_at_layer_import(city: Api) -> None:
    parcels = collection(REDLINE_PARCEL)
    parcels["features"][0]["geometry"]["coordinates"][0][1][0] = "__BAD__"
    data = json.dumps(parcels).replace('"__BAD__"', "NaN").encode()
    r = city.post("admin", "/api/v1/layers", files={"file": ("nan.geojson", data, "application/geo+json")},
                  data={"kind": "geohazard_zone", "name": unique("nan")})
    assert_error(r, 422, "non_finite_coordinates")


def test_non_finite_coordinates_are_refused_in_bubiao_txt(city: Api) -> None:
    text = ("[地块坐标]\n4,1,a,1,面,,,,@\nJ1,1,3400000,39500000\nJ2,1,nan,39500100\n"
            "J3,1,3400100,39500100\nJ1,1,3400000,39500000\n")
    r = city.post("planner", "/api/v1/checks", files={"file": ("p.txt", text.encode("utf-8"), "text/plain")},
                  data={"project_type": "industrial"})
    assert r.status_code == 422, r.text


# --------------------------------------------------------------- defect 9: Idempotency-Key


def test_empty_idempotency_key_is_refused(city: Api) -> None:
    r = city.post("approval_system", "/api/v1/checks", json=_body(collection(PASS_PARCEL)),
                  headers={"Idempotency-Key": ""})
    assert_error(r, 422, "invalid_request")
    r = city.post("approval_system", "/api/v1/checks", json=_body(collection(PASS_PARCEL)),
                  headers={"Idempotency-Key": "   "})
    assert_error(r, 422, "invalid_request")


def test_idempotency_keys_are_scoped_per_caller(city: Api) -> None:
    """Two callers using the same key get their own checks; neither sees the other's result."""
    key = unique("shared")
    first = city.post("approval_system", "/api/v1/checks", json=_body(collection(REDLINE_PARCEL)),
                      headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    other = city.post("planner", "/api/v1/checks", json=_body(collection(PASS_PARCEL)),
                      headers={"Idempotency-Key": key})
    assert other.status_code == 201, other.text
    assert other.json()["check_id"] != first.json()["check_id"] and other.json()["verdict"] == "pass"
    again = city.post("approval_system", "/api/v1/checks", json=_body(collection(REDLINE_PARCEL)),
                      headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.content == first.content


# --------------------------------------------------------------- defect 8: 500s


def test_deeply_nested_json_is_a_4xx(city: Api) -> None:
    text = '{"project_type": "industrial", "parcels": ' + "[" * 5000 + "]" * 5000 + "}"
    r = _post_json_text(city, text)
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] == "invalid_request"
    r = city.client.post("/api/v1/projects", content=("[" * 5000 + "]" * 5000).encode(),
                         headers={**city.h("planner"), "content-type": "application/json"})
    assert r.status_code in (400, 422), r.text


@pytest.mark.parametrize("path", ["/viewer/static/%00", "/viewer/static/" + "a" * 300,
                                  "/viewer/static/a%00b.js", "/workbench/static/%00"])
def test_odd_static_paths_are_404_not_500(city: Api, path: str) -> None:
    r = city.client.get(path)
    assert r.status_code in (400, 404), r.text


# --------------------------------------------------------------- defect 10: the JSON crs member


def test_json_crs_member_is_honoured(city: Api) -> None:
    """Coordinates in EPSG:4548 metres with a legacy ``crs`` member, as multipart already allows."""
    feature = {"type": "Feature", "properties": {"parcel_id": "A"}, "geometry": mapping(REDLINE_PARCEL)}
    parcels = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4548"}},
               "features": [feature]}
    r = city.post("approval_system", "/api/v1/checks", json=_body(json.loads(json.dumps(parcels))))
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "conflict"


# --------------------------------------------------------------- defect 13


def test_duplicate_parcel_ids_are_refused(city: Api) -> None:
    r = city.post("approval_system", "/api/v1/checks",
                  json=_body(collection(PASS_PARCEL, REDLINE_PARCEL, ids=["A", "A"])))
    assert_error(r, 422, "duplicate_parcel_id")


@pytest.mark.parametrize("param", ["q", "name", "code", "district"])
def test_nul_in_project_search_is_refused(city: Api, param: str) -> None:
    """``q=%00`` used to match every project (SQLite's LIKE stops at the NUL)."""
    from tests.api.test_projects import create

    assert create(city, PASS_PARCEL).status_code == 201
    r = city.get("planner", "/api/v1/projects", params={param: "\x00"})
    assert_error(r, 422, "invalid_request")
    r = city.get("planner", "/api/v1/projects", params={param: "a\x01b"})
    assert_error(r, 422, "invalid_request")


def test_error_messages_name_no_server_paths(city: Api) -> None:
    for name, data in [("p.zip", b"PK\x03\x04 broken"), ("p.geojson", b"{not json"), ("p.gpkg", b"x" * 100),
                       ("p.dxf", b"0\nSECTION\n"), ("p.txt", b"\xff\xfe garbage")]:
        r = city.post("planner", "/api/v1/checks", files={"file": (name, data)},
                      data={"project_type": "industrial"})
        assert 400 <= r.status_code < 500, r.text
        assert "blueprint-upload-" not in r.text and "/tmp" not in r.text, r.text


# --------------------------------------------------------------- defect 5: one rule for unclosed rings


def test_unclosed_ring_one_rule_for_json_and_multipart(city: Api) -> None:
    """Multipart used to answer 422, JSON closed the ring silently: both close it and report a repair."""
    parcels = collection(PASS_PARCEL, ids=["A"])
    ring = parcels["features"][0]["geometry"]["coordinates"][0]
    ring.pop()  # the closing vertex
    as_json = city.post("approval_system", "/api/v1/checks", json=_body(parcels))
    as_file = city.post("planner", "/api/v1/checks", data={"project_type": "industrial"},
                        files={"file": ("open.geojson", json.dumps(parcels).encode())})
    for r in (as_json, as_file):
        assert r.status_code == 201, r.text
        parcel = r.json()["parcels"][0]
        assert parcel["verdict"] == "pass" and abs(parcel["area_m2"] - 10_000) < 1
        assert [x["problem"] for x in parcel["repairs"]] == ["ring_not_closed"], parcel


def test_a_check_and_its_audit_entry_commit_together(city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the two used to leave a stored check without its audit entry."""
    from approval.audit import AuditLog

    with city.services.engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM checks")).scalar_one()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between the check and its audit entry")

    monkeypatch.setattr(AuditLog, "append", staticmethod(crash))
    monkeypatch.setattr(AuditLog, "record", crash)
    with pytest.raises(RuntimeError):  # the test client re-raises what the 500 handler logged
        city.post("approval_system", "/api/v1/checks", json=_body(collection(PASS_PARCEL)))
    with city.services.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM checks")).scalar_one() == before


# --------------------------------------------------------------- defect 7: layer import


def _polygon_file(ring: list[list[float]], crs: str | None = None) -> bytes:
    obj: dict[str, Any] = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    if crs:
        obj["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(obj).encode()


WORLD = [[-180, -89], [180, -89], [180, 89], [-180, 89], [-180, -89]]
AT_MINUS_2 = [[-2.0, 30.9], [-1.99, 30.9], [-1.99, 30.91], [-2.0, 30.91], [-2.0, 30.9]]
TONGLING = [[117.8, 30.9], [117.81, 30.9], [117.81, 30.91], [117.8, 30.91], [117.8, 30.9]]


@pytest.mark.parametrize(("ring", "crs", "code"), [
    (WORLD, None, "coordinates_out_of_range"),
    (AT_MINUS_2, None, "coordinates_out_of_range"),
    (TONGLING, "EPSG:999999", "crs_error"),
], ids=["whole world", "-2 degrees", "unknown crs"])
def test_layer_import_refuses_unknown_crs_and_far_away_geometry(city: Api, ring, crs, code) -> None:
    r = city.post("admin", "/api/v1/layers", files={"file": ("red.geojson", _polygon_file(ring, crs))},
                  data={"kind": "ecological_redline", "name": unique("far")})
    assert_error(r, 422, code)
    r = city.post("planner", "/api/v1/checks", files={"file": ("p.geojson", _polygon_file(ring, crs))},
                  data={"project_type": "industrial"})
    assert r.status_code == 422, r.text  # parcels: outside the city (or the unknown CRS), never a verdict


# --------------------------------------------------------------- cost admission (issue #16 part 6)


def test_one_parcel_with_many_vertices_becomes_a_job(city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heavy single parcel goes to the job queue, not into a CPU slot the quick checks need."""
    import shapely

    monkeypatch.setattr(city.services, "job_vertex_threshold", 1_000)
    heavy = shapely.segmentize(PASS_PARCEL, 0.2)  # ≈ 2,000 vertices
    assert shapely.get_num_coordinates(heavy) > 1_000
    r = city.post("approval_system", "/api/v1/checks", json=_body(collection(heavy)))
    assert r.status_code == 202, r.text
    light = city.post("approval_system", "/api/v1/checks", json=_body(collection(PASS_PARCEL)))
    assert light.status_code == 201
