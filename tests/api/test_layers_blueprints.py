"""Layers (upload, list, get, delete, hostile files) and blueprints (build, read, publish) through the API."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.api.conftest import LAYERS, Api, publish_city, write_layer
from tests.api.test_service import assert_error


def upload(api: Api, path: Path, kind: str, role: str = "admin", **data: str):
    with path.open("rb") as fh:
        return api.post(role, "/api/v1/layers", files={"file": (path.name, fh)}, data={"kind": kind, **data})


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_upload_list_get_delete(fresh: Api, tmp_path: Path) -> None:
    r = upload(fresh, write_layer(tmp_path, "ecological_redline"), "ecological_redline", name="红线2024")
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["name"] == "红线2024" and summary["kind"] == "ecological_redline"
    assert summary["feature_count"] == 1 and summary["crs_out"] == "EPSG:4548"
    assert [layer["name"] for layer in fresh.get("reviewer", "/api/v1/layers").json()] == ["红线2024"]
    assert fresh.get("planner", "/api/v1/layers/红线2024").json()["checksum"] == summary["checksum"]
    assert_error(
        upload(fresh, write_layer(tmp_path, "ecological_redline"), "ecological_redline", name="红线2024"),
        409,
        "layer_exists",
    )
    assert (
        upload(
            fresh,
            write_layer(tmp_path, "ecological_redline"),
            "ecological_redline",
            name="红线2024",
            replace="true",
        ).status_code
        == 201
    )
    assert_error(fresh.client.delete("/api/v1/layers/红线2024", headers=fresh.h("planner")), 403, "forbidden")
    assert fresh.client.delete("/api/v1/layers/红线2024", headers=fresh.h("admin")).status_code == 204
    assert_error(fresh.get("admin", "/api/v1/layers/红线2024"), 404, "layer_not_found")
    actions = [
        e["action"]
        for e in fresh.get("admin", "/api/v1/audit", params={"subject_type": "layer"}).json()["items"]
    ]
    assert actions == ["layer.upload", "layer.upload", "layer.delete"]


def test_only_admins_upload(fresh: Api, tmp_path: Path) -> None:
    for role in ("planner", "reviewer", "approval_system"):
        assert_error(
            upload(fresh, write_layer(tmp_path, "urban_boundary"), "urban_boundary", role=role),
            403,
            "forbidden",
        )


def test_bad_and_hostile_files_store_nothing(fresh: Api, tmp_path: Path) -> None:
    cases = {
        "traversal.zip": zip_bytes({"../../evil.shp": b"x", "ok.dbf": b"y"}),
        "bomb.zip": zip_bytes({"a.geojson": b"0" * 20_000_000}),
        "garbage.geojson": b"{this is not json",
        "empty.zip": zip_bytes({}),
        "notes.exe": b"MZ\x90\x00",
    }
    for name, data in cases.items():
        r = fresh.post(
            "admin", "/api/v1/layers", files={"file": (name, data)}, data={"kind": "urban_boundary"}
        )
        assert r.status_code in (413, 422), (name, r.status_code, r.text)
        assert set(r.json()) - {"message_zh"} == {"code", "detail"}
    assert_error(upload(fresh, write_layer(tmp_path, "urban_boundary"), "no_such_kind"), 422, "unknown_kind")
    assert fresh.get("admin", "/api/v1/layers").json() == []


def test_malformed_geometry_in_a_layer_is_422_not_500(fresh: Api) -> None:
    """A ring too short to be one: the client's fault, a 422, and nothing stored."""
    short_ring = (
        b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":'
        b'{"type":"Polygon","coordinates":[[[117.0,30.9],[117.01,30.9]]]}}]}'
    )
    files = {"file": ("ring.geojson", short_ring)}
    r = fresh.post("admin", "/api/v1/layers", files=files, data={"kind": "urban_boundary"})
    assert r.status_code == 422, r.text
    assert fresh.get("admin", "/api/v1/layers").json() == []


def test_a_ring_without_its_closing_vertex_is_closed_and_reported(fresh: Api) -> None:
    """Issue #16 defect 5, one rule everywhere (files, JSON, CLI): closed, and a ring_not_closed repair.
    (This upload used to be a 422 while the same ring in a JSON check was closed silently.)"""
    open_ring = (
        b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":'
        b'{"type":"Polygon","coordinates":[[[117.0,30.9],[117.01,30.9],[117.01,30.91]]]}}]}'
    )
    files = {"file": ("ring.geojson", open_ring)}
    r = fresh.post("admin", "/api/v1/layers", files=files, data={"kind": "urban_boundary"})
    assert r.status_code == 201, r.text
    assert [x["problem"] for x in r.json()["repairs"]] == ["ring_not_closed"]


def test_uploaded_file_name_cannot_escape(fresh: Api, tmp_path: Path) -> None:
    data = write_layer(tmp_path, "urban_boundary").read_bytes()
    r = fresh.post(
        "admin",
        "/api/v1/layers",
        files={"file": ("../../../../tmp/x.geojson", data)},
        data={"kind": "urban_boundary", "name": "ub"},
    )
    assert r.status_code == 201, r.text
    assert not Path("/tmp/x.geojson").exists() or Path("/tmp/x.geojson").read_bytes() != data


def test_build_read_publish(fresh: Api, tmp_path: Path) -> None:
    version = publish_city(fresh, tmp_path)
    versions = fresh.get("planner", "/api/v1/blueprints").json()
    assert [(v["version"], v["status"]) for v in versions] == [(version, "published")]
    detail = fresh.get("approval_system", f"/api/v1/blueprints/{version}").json()
    assert detail["status"] == "published" and detail["piece_count"] > 0
    assert {"ecological_redline", "permanent_farmland", "urban_boundary"} <= set(detail["area_by_kind_m2"])
    # the farmland/urban-boundary overlap is listed as a conflict, farmland prevailing
    assert detail["conflict_count"] >= 1
    conflict = detail["conflicts"][0]
    assert {conflict["kind_a"], conflict["kind_b"]} == {"permanent_farmland", "urban_boundary"}
    assert conflict["winner"] == "permanent_farmland" and "geometry" not in conflict
    assert_error(fresh.post("admin", f"/api/v1/blueprints/{version}/publish"), 409, "blueprint_immutable")
    assert_error(fresh.post("planner", "/api/v1/blueprints", json={}), 403, "forbidden")
    assert_error(fresh.post("admin", "/api/v1/blueprints/v42/publish"), 404, "blueprint_not_found")
    # a used layer can no longer be deleted
    assert_error(
        fresh.client.delete("/api/v1/layers/urban_boundary", headers=fresh.h("admin")), 409, "layer_in_use"
    )
    draft = fresh.post("admin", "/api/v1/blueprints", json={"layers": list(LAYERS), "tolerance_m": 0.1})
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    # checks run against published versions only
    from tests.api.conftest import PASS_PARCEL, collection

    r = fresh.post(
        "planner",
        "/api/v1/checks",
        json={
            "project_type": "industrial",
            "parcels": collection(PASS_PARCEL),
            "blueprint_version": draft.json()["version"],
        },
    )
    assert_error(r, 409, "blueprint_not_published")
    audit = fresh.get("admin", "/api/v1/audit", params={"subject_type": "blueprint"}).json()["items"]
    assert [e["action"] for e in audit] == ["blueprint.build", "blueprint.publish", "blueprint.build"]


def test_build_without_layers(fresh: Api) -> None:
    r = fresh.post("admin", "/api/v1/blueprints", json={})
    assert r.status_code in (409, 422) and set(r.json()) - {"message_zh"} == {"code", "detail"}, r.text


def test_parallel_uploads_lose_nothing(fresh: Api, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = write_layer(tmp_path, "geohazard_zone").read_bytes()

    def send(i: int):
        return fresh.post(
            "admin",
            "/api/v1/layers",
            files={"file": (f"h{i}.geojson", data)},
            data={"kind": "geohazard_zone", "name": f"hazard-{i}"},
        )

    with ThreadPoolExecutor(6) as pool:
        statuses = [r.status_code for r in pool.map(send, range(6))]
    assert statuses == [201] * 6
    assert sorted(layer["name"] for layer in fresh.get("admin", "/api/v1/layers").json()) == [
        f"hazard-{i}" for i in range(6)
    ]
    assert len(fresh.get("admin", "/api/v1/audit", params={"action": "layer.upload"}).json()["items"]) == 6
