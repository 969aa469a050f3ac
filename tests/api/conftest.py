"""API test fixtures: a small published city per backend, keys per role, GeoJSON parcel builders.

The city, in metres from tests.geoms (X0, Y0), EPSG:4548; city = [0, 2000] × [0, 1000]:

    x:  0 ───── 500 ───── 1000 ── 1100 ───── 2000
    ecological_redline   [0, 500]    × [0, 1000]
    permanent_farmland   [500, 1100] × [0, 1000]   (overlaps the urban boundary: one 差异图斑)
    urban_boundary       [1000, 2000] × [0, 1000]
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg2 import sql
from shapely.geometry import box, mapping

from api.app import create_app
from layers.crs import OUTPUT_CRS
from runtime.keys import KeyStore
from runtime.services import Services
from runtime.settings import Settings
from tests.dbfixtures import PG_ADMIN_DSN, PG_SERVER
from tests.geoms import X0, Y0

JOB_THRESHOLD = 20
ROLES = ("planner", "reviewer", "admin", "approval_system")
LAYERS = {
    "ecological_redline": (0, 0, 500, 1000),
    "permanent_farmland": (500, 0, 1100, 1000),
    "urban_boundary": (1000, 0, 2000, 1000),
    "city_boundary": (0, 0, 2000, 1000),
}


def rect(x0: float, y0: float, x1: float, y1: float) -> Any:
    """A rectangle in EPSG:4548, in metres from the city origin."""
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


PASS_PARCEL = rect(1500, 400, 1600, 500)  # inside the urban boundary only
REDLINE_PARCEL = rect(100, 100, 200, 200)  # inside the ecological red line
OUTSIDE_PARCEL = rect(5000, 5000, 5100, 5100)  # far outside the city


def collection(*geoms: Any, ids: list[str] | None = None, names: list[str] | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (EPSG:4326) of EPSG:4548 geometries."""
    ids = ids or [str(i + 1) for i in range(len(geoms))]
    frame = gpd.GeoDataFrame({"parcel_id": ids}, geometry=list(geoms), crs="EPSG:4548").to_crs(OUTPUT_CRS)
    features = []
    for i, (pid, geom) in enumerate(zip(ids, frame.geometry, strict=True)):
        props: dict[str, Any] = {"parcel_id": pid}
        if names:
            props["name"] = names[i]
        features.append({"type": "Feature", "properties": props, "geometry": mapping(geom)})
    return json.loads(json.dumps({"type": "FeatureCollection", "features": features}))


def write_layer(directory: Path, kind: str) -> Path:
    """A one-feature GeoJSON layer of ``kind`` (geohazard_zone reuses the farmland rectangle)."""
    path = directory / f"{kind}.geojson"
    gpd.GeoDataFrame(
        {"fid_src": [f"{kind[:3].upper()}1"]},
        geometry=[rect(*LAYERS.get(kind, LAYERS["permanent_farmland"]))],
        crs="EPSG:4548",
    ).to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
    return path


def settings_for(url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": url, "data_dir": data_dir, "dev_mode": False}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Api:
    """A running app with one key per role."""

    app: FastAPI
    client: TestClient
    keys: dict[str, str]

    @property
    def services(self) -> Services:
        return self.app.state.services

    def h(self, role: str, **extra: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role], **extra}

    def get(self, role: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.h(role), **kw)

    def post(self, role: str, path: str, **kw: Any) -> Any:
        headers = {**self.h(role), **kw.pop("headers", {})}
        return self.client.post(path, headers=headers, **kw)

    def put(self, role: str, path: str, **kw: Any) -> Any:
        headers = {**self.h(role), **kw.pop("headers", {})}
        return self.client.put(path, headers=headers, **kw)


def make_keys(services: Services) -> dict[str, str]:
    store = KeyStore(services.engine)
    return {role: store.create(f"test {role}", role)[0] for role in ROLES}  # type: ignore[arg-type]


def upload_layer(api: Api, path: Path, kind: str, *, name: str | None = None, **data: str) -> Any:
    """POST a GeoJSON layer file as the admin (layer name = the kind unless given); the response."""
    with path.open("rb") as fh:
        return api.post(
            "admin",
            "/api/v1/layers",
            files={"file": (path.name, fh, "application/geo+json")},
            data={"kind": kind, "name": name or kind, **data},
        )


def publish_city(api: Api, tmp: Path) -> str:
    for kind in LAYERS:
        r = upload_layer(api, write_layer(tmp, kind), kind)
        assert r.status_code == 201, r.text
    r = api.post("admin", "/api/v1/blueprints", json={})
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    r = api.post("admin", f"/api/v1/blueprints/{version}/publish")
    assert r.status_code == 200, r.text
    return version


@pytest.fixture(scope="module", params=["spatialite", pytest.param("postgis", marks=pytest.mark.postgis)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own (so module-scoped apps never see other tests' truncation)."""
    if request.param == "spatialite":
        yield f"sqlite:///{tmp_path_factory.mktemp('apidb') / 'blueprint.sqlite'}"
        return
    try:
        admin = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostGIS server {PG_SERVER} unreachable: {str(exc).strip()}")
    admin.autocommit = True
    name = f"blueprint_api_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="module")
def city(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An app on a fresh database with the test city built and published as v1 (shared by a module)."""
    tmp = tmp_path_factory.mktemp("city")
    app = create_app(settings_for(module_db_url, tmp))
    app.state.services.job_threshold = JOB_THRESHOLD  # small, so the tests can reach the job path
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        publish_city(api, tmp)
        yield api
    app.state.services.close()


@pytest.fixture
def fresh(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """An app on an empty database (no blueprint), one key per role."""
    app = create_app(settings_for(db_url, tmp_path))
    with TestClient(app) as client:
        yield Api(app, client, make_keys(app.state.services))
    app.state.services.close()


def unique(prefix: str = "P") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def national_code() -> str:
    """A fresh code of the national investment-project shape YYYY-DDDDDD-DD-DD-DDDDDD."""
    digits = f"{uuid.uuid4().int % 10**10:010d}"
    return f"2026-340700-{digits[:2]}-{digits[2:4]}-{digits[4:]}"
