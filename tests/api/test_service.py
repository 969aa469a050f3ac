"""The app factory, health/readiness, authentication and the {"code", "detail"} error shape."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from runtime.keys import DEV_KEYS
from tests.api.conftest import Api, settings_for


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) - {"message_zh"} == {"code", "detail"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


def test_health_needs_no_key(fresh: Api) -> None:
    assert fresh.client.get("/health").json() == {"status": "ok"}


def test_ready_reports_database_and_revision(fresh: Api) -> None:
    r = fresh.client.get("/ready")
    assert r.status_code == 200, r.text
    from tests.storage.test_migrations import _head

    assert r.json()["revision"] == _head()


def test_ready_reads_the_migration_scripts_once(fresh: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readiness is polled every few seconds: the migration head (~20 ms to parse) is read once."""
    import api.routes.health as health

    real, parsed = health.ScriptDirectory, []

    def counting(*args: object, **kw: object) -> object:
        parsed.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(health, "ScriptDirectory", counting)
    for _ in range(3):
        assert fresh.client.get("/ready").json()["status"] == "ready"
    assert len(parsed) <= 1


def test_every_api_route_requires_a_key(fresh: Api) -> None:
    for path in (
        "/api/v1/layers",
        "/api/v1/blueprints",
        "/api/v1/projects",
        "/ogc",
        "/ogc/collections",
        "/api/v1/checks/x",
        "/api/v1/audit",
    ):
        assert_error(fresh.client.get(path), 401, "unauthenticated")
    r = fresh.client.get("/api/v1/layers")
    assert "WWW-Authenticate" in r.headers


def test_unknown_key_is_refused(fresh: Api) -> None:
    assert_error(
        fresh.client.get("/api/v1/layers", headers={"X-API-Key": "obk_nope_nope"}), 401, "invalid_api_key"
    )
    # a real key id with a wrong secret
    key_id = fresh.keys["admin"].split("_")[1]
    assert_error(
        fresh.client.get("/api/v1/layers", headers={"X-API-Key": f"obk_{key_id}_wrong"}),
        401,
        "invalid_api_key",
    )


@pytest.mark.parametrize("how", ["header", "bearer", "cookie"])
def test_three_ways_to_present_a_key(fresh: Api, how: str) -> None:
    key = fresh.keys["planner"]
    if how == "header":
        r = fresh.client.get("/api/v1/layers", headers={"X-API-Key": key})
    elif how == "bearer":
        r = fresh.client.get("/api/v1/layers", headers={"Authorization": f"Bearer {key}"})
    else:
        fresh.client.cookies.set("blueprint_key", key)
        try:
            r = fresh.client.get("/api/v1/layers")
        finally:
            fresh.client.cookies.clear()
    assert r.status_code == 200, r.text


def test_revoked_key_stops_working(fresh: Api) -> None:
    r = fresh.post("admin", "/api/v1/keys", json={"name": "temp", "role": "planner"})
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["key_id"]
    assert fresh.client.get("/api/v1/layers", headers={"X-API-Key": key}).status_code == 200
    assert fresh.client.delete(f"/api/v1/keys/{key_id}", headers=fresh.h("admin")).status_code == 204
    assert_error(fresh.client.get("/api/v1/layers", headers={"X-API-Key": key}), 401, "invalid_api_key")
    listed = fresh.get("admin", "/api/v1/keys").json()
    assert all("key" not in k and "secret_hash" not in k and "salt" not in k for k in listed)


def test_dev_keys_only_in_dev_mode(db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dev_admin = next(k for k, role in DEV_KEYS.items() if role == "admin")
    app = create_app(settings_for(db_url, tmp_path))
    with TestClient(app) as client:
        assert_error(client.get("/api/v1/layers", headers={"X-API-Key": dev_admin}), 401, "invalid_api_key")
    app.state.services.close()
    with caplog.at_level(logging.WARNING):
        dev = create_app(settings_for(db_url, tmp_path, dev_mode=True))
    assert any("DEV MODE" in rec.getMessage() for rec in caplog.records)
    with TestClient(dev) as client:
        assert client.get("/api/v1/layers", headers={"X-API-Key": dev_admin}).status_code == 200
    dev.state.services.close()


def test_keys_never_reach_the_log(fresh: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        fresh.get("admin", "/api/v1/layers")
        fresh.client.get("/api/v1/layers", headers={"X-API-Key": "obk_aaaa_secret-that-is-wrong"})
        fresh.post("admin", "/api/v1/keys", json={"name": "x", "role": "reviewer"})
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    for key in fresh.keys.values():
        assert key not in text and key.split("_", 2)[2] not in text
    assert "secret-that-is-wrong" not in text


def test_error_shapes(fresh: Api) -> None:
    assert_error(fresh.get("admin", "/api/v1/nothing-here"), 404, "not_found")
    assert_error(fresh.client.put("/api/v1/layers", headers=fresh.h("admin")), 405, "method_not_allowed")
    assert_error(fresh.get("admin", "/api/v1/checks/unknown"), 404, "check_not_found")
    assert_error(fresh.get("admin", "/api/v1/blueprints/v99"), 404, "blueprint_not_found")
    assert_error(fresh.get("admin", "/api/v1/projects/none"), 404, "project_not_found")
    assert_error(fresh.get("admin", "/api/v1/projects?limit=0"), 422, "invalid_request")
    r = fresh.post(
        "planner", "/api/v1/checks", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(r, 422, "invalid_request")
    r = fresh.post("planner", "/api/v1/checks", content=b"x", headers={"Content-Type": "text/plain"})
    assert_error(r, 422, "invalid_request")


def test_no_blueprint_published_yet(fresh: Api) -> None:
    from tests.api.conftest import PASS_PARCEL, collection

    r = fresh.post(
        "planner", "/api/v1/checks", json={"project_type": "industrial", "parcels": collection(PASS_PARCEL)}
    )
    assert_error(r, 409, "no_published_blueprint")


def test_body_over_the_layer_upload_limit_is_413(db_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for(db_url, tmp_path, layer_max_bytes=1000))
    with TestClient(app) as client:
        key = app.state.services.keys.create("t", "admin")[0]
        big = b"x" * 200_000
        r = client.post(
            "/api/v1/layers",
            headers={"X-API-Key": key},
            files={"file": ("big.geojson", big)},
            data={"kind": "urban_boundary"},
        )
        assert_error(r, 413, "payload_too_large")
        assert "plan-layer limit of 1,000 bytes" in r.json()["detail"]
        assert "BLUEPRINT_LAYER_MAX_BYTES" in r.json()["detail"]
        # just over the file limit but under the body limit (framing allowance): the file check catches it
        r = client.post(
            "/api/v1/layers",
            headers={"X-API-Key": key},
            files={"file": ("big.geojson", b"y" * 1500)},
            data={"kind": "urban_boundary"},
        )
        assert_error(r, 413, "file_too_large")
        assert "BLUEPRINT_LAYER_MAX_BYTES" in r.json()["detail"]
        assert client.get("/api/v1/layers", headers={"X-API-Key": key}).json() == []
    app.state.services.close()


def test_submission_body_limit_is_separate_from_the_layer_limit(db_url: str, tmp_path: Path) -> None:
    """A check keeps the submission limit while a layer upload of the same size goes through to reading."""
    app = create_app(settings_for(db_url, tmp_path, max_upload_bytes=1000))
    with TestClient(app) as client:
        admin, planner = (app.state.services.keys.create("t", role)[0] for role in ("admin", "planner"))
        big = b"x" * 200_000
        r = client.post(
            "/api/v1/checks",
            headers={"X-API-Key": planner},
            files={"file": ("big.geojson", big)},
            data={"project_type": "industrial"},
        )
        assert_error(r, 413, "payload_too_large")
        assert "submission limit of 1,000 bytes" in r.json()["detail"]
        assert "BLUEPRINT_MAX_UPLOAD_BYTES" in r.json()["detail"]
        r = client.post(
            "/api/v1/checks",
            headers={"X-API-Key": planner, "Content-Type": "application/json"},
            content=b" " * 200_000,
        )
        assert_error(r, 413, "payload_too_large")
        r = client.post(
            "/api/v1/checks",
            headers={"X-API-Key": planner},
            files={"file": ("big.geojson", b"y" * 1500)},
            data={"project_type": "industrial"},
        )
        assert_error(r, 413, "file_too_large")
        assert "BLUEPRINT_MAX_UPLOAD_BYTES" in r.json()["detail"]
        # the same body to the layer route passes both size checks and fails only as unreadable GeoJSON
        r = client.post(
            "/api/v1/layers",
            headers={"X-API-Key": admin},
            files={"file": ("big.geojson", big)},
            data={"kind": "urban_boundary"},
        )
        assert_error(r, 422, "unreadable_file")
    app.state.services.close()


def test_openapi_documents_security_and_both_body_types(fresh: Api) -> None:
    spec = fresh.client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"ApiKeyHeader", "Bearer", "ViewerCookie"} <= set(schemes)
    body = spec["paths"]["/api/v1/checks"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "CheckRequest" in spec["components"]["schemas"]
    assert "ParcelCollection" in spec["components"]["schemas"]


def test_two_apps_do_not_share_state(db_url: str, tmp_path: Path) -> None:
    a = create_app(settings_for(db_url, tmp_path / "a"))
    b = create_app(settings_for(db_url, tmp_path / "b", dev_mode=True))
    assert a.state.services is not b.state.services
    assert not a.state.services.keyring.dev_mode and b.state.services.keyring.dev_mode
    a.state.services.close()
    b.state.services.close()


def test_feature_and_vertex_limits(db_url: str, tmp_path: Path) -> None:
    from tests.api.conftest import PASS_PARCEL, REDLINE_PARCEL, collection, rect

    app = create_app(settings_for(db_url, tmp_path, max_features=2, max_vertices=40))
    with TestClient(app) as client:
        key = app.state.services.keys.create("t", "planner")[0]
        three = collection(PASS_PARCEL, REDLINE_PARCEL, rect(1200, 0, 1300, 100))
        r = client.post(
            "/api/v1/checks",
            headers={"X-API-Key": key},
            json={"project_type": "industrial", "parcels": three},
        )
        assert_error(r, 413, "file_too_large")
        assert "3 features, more than the submission limit of 2 features" in r.json()["detail"]
        assert "BLUEPRINT_MAX_FEATURES" in r.json()["detail"]
        dense = PASS_PARCEL.segmentize(5)  # hundreds of vertices
        r = client.post(
            "/api/v1/checks",
            headers={"X-API-Key": key},
            json={"project_type": "industrial", "parcels": collection(dense)},
        )
        assert_error(r, 413, "file_too_large")
        assert "submission limit of 40 vertices" in r.json()["detail"]
        assert "BLUEPRINT_MAX_VERTICES" in r.json()["detail"]
    app.state.services.close()
