"""Fixtures for the viewer: an in-memory ViewerSource over a hand-made 2 km demo city (EPSG:4548)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pyproj import CRS
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from layers.crs import OUTPUT_CRS
from tests.geoms import X0, Y0
from viewer.routes import build_router

WORK = CRS.from_epsg(4548)
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium (scripts/setup.sh installs it)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright, one per test module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


def b(x0: float, y0: float, x1: float, y1: float) -> BaseGeometry:
    """A box in metres relative to the demo origin (X0, Y0), EPSG:4548."""
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


# Version v1: a 2 km × 2 km city cut into pieces (a planar partition, as blueprint.model requires).
#   west strip x<-400: ecological red line inside ecological space
#   south-middle: permanent farmland in agricultural space
#   north and south-east: urban boundary in urban space, in three pieces (to test dissolving)
#   a geohazard overlay on one urban piece
V1_PIECES: list[tuple[BaseGeometry, list[str]]] = [
    (b(-1000, -1000, -400, 1000), ["ecological_redline", "ecological_space"]),
    (b(-400, -1000, 200, 0), ["permanent_farmland", "agricultural_space"]),
    (b(-400, 0, 300, 1000), ["urban_boundary", "urban_space"]),
    (b(300, 0, 1000, 1000), ["urban_boundary", "urban_space", "geohazard_zone"]),
    (b(200, -1000, 1000, 0), ["urban_boundary", "urban_space"]),
]
# Version v2: the urban boundary took 200 m × 400 m of farmland (x 0..200, y -400..0).
V2_PIECES: list[tuple[BaseGeometry, list[str]]] = [
    V1_PIECES[0],
    (b(-400, -1000, 200, 0).difference(b(0, -400, 200, 0)), ["permanent_farmland", "agricultural_space"]),
    V1_PIECES[2],
    V1_PIECES[3],
    (b(200, -1000, 1000, 0).union(b(0, -400, 200, 0)), ["urban_boundary", "urban_space"]),
]
CONFLICT = b(100, -200, 200, -100)  # farmland vs urban boundary, farmland prevails
PARCEL = b(-450, -100, -350, 100)  # crosses the red line, farmland and the urban boundary


def pieces_frame(rows: list[tuple[BaseGeometry, list[str]]]) -> gpd.GeoDataFrame:
    records = []
    for i, (geom, kinds) in enumerate(rows, start=1):
        records.append({
            "piece_id": f"P{i:06d}", "kind": kinds[0], "kinds": json.dumps(kinds),
            "covered_by": json.dumps([*kinds, "city_boundary"]), "sources": "[]",
            "area_m2": geom.area, "geometry": geom,
        })
    return gpd.GeoDataFrame(records, geometry="geometry", crs=WORK)


def conflicts_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame([{
        "conflict_id": "C000001", "kind_a": "permanent_farmland", "kind_b": "urban_boundary",
        "layer_a": "农田 2025", "layer_b": "城镇 2025", "feature_ids": "{}", "rule": "three_lines_exclusive",
        "resolution": "永久基本农田优先 permanent_farmland prevails", "winner": "permanent_farmland",
        "area_m2": CONFLICT.area, "geometry": CONFLICT,
    }], geometry="geometry", crs=WORK)


def to_4326(geom: BaseGeometry) -> dict[str, Any]:
    return mapping(gpd.GeoSeries([geom], crs=WORK).to_crs(OUTPUT_CRS).iloc[0])


def demo_check() -> dict[str, Any]:
    """A screening result (issue #4 contract) for PARCEL, as the check store would hold it."""
    hits = []
    for kind, zh, en, rule, piece in (
        ("ecological_redline", "生态保护红线", "Ecological protection red line", "forbidden",
         V1_PIECES[0][0]),
        ("permanent_farmland", "永久基本农田", "Permanent basic farmland", "forbidden",
         V1_PIECES[1][0]),
    ):
        overlap = PARCEL.intersection(piece)
        hits.append({"kind": kind, "name_zh": zh, "name_en": en, "rule": rule,
                     "overlap_area_m2": round(overlap.area, 2),
                     "overlap_ellipsoidal_area_m2": round(overlap.area, 2),
                     "overlap_ratio": round(overlap.area / PARCEL.area, 4), "feature_ids": ["1"],
                     "geometry": to_4326(overlap)})
    return {
        "check_id": "CHK-0001", "blueprint_version": "v1", "project_type": "industrial",
        "verdict": "conflict",
        "parcels": [{
            "parcel_id": "1", "area_m2": PARCEL.area, "ellipsoidal_area_m2": PARCEL.area * 1.0001,
            "verdict": "conflict", "conflicts": hits, "repairs": [],
            "explanation_zh": "地块占用生态保护红线5000.00平方米，工业项目禁止占用。",
            "explanation_en": "The parcel takes 5000.00 m² of the ecological red line; "
                              "forbidden for industrial projects.",
        }],
    }


DEMO_PROJECT: dict[str, Any] = {
    "code": "TL-2026-001", "name": "铜陵新材料产业园一期", "project_type": "industrial",
    "applicant": "铜陵市建设投资集团", "district": "义安区", "status": "in_review",
    "latest_check_id": "CHK-0001",
    "reviews": [{"decided_by": "联审会 Joint review board", "decided_at": "2026-11-20T09:00:00Z",
                 "decision": "rejected", "conditions": "", "reasons": "占用生态保护红线 takes the red line"}],
}


@dataclass
class MemorySource:
    """An in-memory ViewerSource: two published versions, one conflict, one project with one check."""

    versions_: dict[str, gpd.GeoDataFrame] = field(default_factory=lambda: {
        "v1": pieces_frame(V1_PIECES), "v2": pieces_frame(V2_PIECES)})
    calls: dict[str, int] = field(default_factory=dict)

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def work_crs(self) -> CRS:
        return WORK

    def versions(self) -> list[dict[str, Any]]:
        self._count("versions")
        return [{"version": v, "status": "published"} for v in self.versions_]

    def latest_version(self) -> str | None:
        return list(self.versions_)[-1] if self.versions_ else None

    def pieces(self, version: str) -> gpd.GeoDataFrame:
        self._count("pieces")
        return self.versions_[version]

    def conflicts(self, version: str) -> gpd.GeoDataFrame:
        if version not in self.versions_:
            raise KeyError(version)
        return conflicts_frame()

    def city_bounds_4326(self) -> tuple[float, float, float, float]:
        frame = self.versions_["v1"].to_crs(OUTPUT_CRS)
        minx, miny, maxx, maxy = frame.total_bounds
        return float(minx), float(miny), float(maxx), float(maxy)

    def search_projects(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        hit = q in DEMO_PROJECT["code"] or q in DEMO_PROJECT["name"]
        return [{k: DEMO_PROJECT[k] for k in ("code", "name", "project_type", "status")}] if hit else []

    def public_projects(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        self._count("public_projects")
        keys = ("code", "name", "district", "status")
        dates = {"created_at": "2026-11-20T09:00:00+00:00", "updated_at": "2026-11-21T09:00:00+00:00"}
        return [{k: DEMO_PROJECT[k] for k in keys} | dates][offset:offset + limit], 1

    def check(self, check_id: str) -> dict[str, Any] | None:
        return demo_check() if check_id == "CHK-0001" else None

    def project_for_check(self, check_id: str) -> dict[str, Any] | None:
        if check_id != "CHK-0001":
            return None
        feature = {"type": "Feature", "properties": {"parcel_id": "1"}, "geometry": to_4326(PARCEL)}
        parcels = {"type": "FeatureCollection", "features": [feature]}
        return {**DEMO_PROJECT, "parcels": parcels}


def no_auth() -> None:
    """The tests' auth dependency: everyone is let in."""


def signed_in(app: FastAPI) -> TestClient:
    """A client carrying the viewer's key cookie (pages without any key redirect to the sign-in form)."""
    return TestClient(app, cookies={"blueprint_key": "test-key"})


def make_app(source: MemorySource, **kwargs: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(build_router(source, no_auth, **kwargs))
    return app


@pytest.fixture()
def source() -> MemorySource:
    return MemorySource()


@pytest.fixture()
def client(source: MemorySource) -> TestClient:
    return signed_in(make_app(source))
