"""GDAL's OAPIF driver and QGIS against the running service: Debian's ogrinfo/ogr2ogr, the GDAL pyogrio
bundles, and QGIS 3.22's own OAPIF provider (Debian python3-qgis) signing in through its auth manager.

The service runs under uvicorn on 127.0.0.1 with a request log in front of it, so the tests count what
the client really asked for (page sizes, filters, CRS). Farmland is delivered as 2,000 small fields so
the blueprint has ~2,100 pieces: several pages at 1,000 a page, hundreds at GDAL 3.6's default of 10.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import geopandas as gpd
import pyogrio
import pytest
import shapely
import uvicorn
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from layers.crs import OUTPUT_CRS
from tests.api.conftest import LAYERS, Api, make_keys, rect, settings_for, write_layer
from tests.geoms import X0, Y0

pytestmark = pytest.mark.slow

OGRINFO, OGR2OGR = shutil.which("ogrinfo"), shutil.which("ogr2ogr")
needs_gdal_bin = pytest.mark.skipif(
    OGRINFO is None or OGR2OGR is None, reason="no Debian gdal-bin (scripts/setup.sh --test installs it)"
)
EPSG_4548 = "http://www.opengis.net/def/crs/EPSG/0/4548"
PIECES = "blueprint-v1-pieces"
FIELDS = (40, 50)  # farmland fields: columns × rows of 14 m × 19 m in the farmland strip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RequestLog:
    """ASGI wrapper that records the path and query string of every HTTP request (server-side count)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, dict[str, list[str]]]] = []
        self.schemes: list[str] = []  # the Authorization scheme of each request ("" without one)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["path"], parse_qs(scope["query_string"].decode())))
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            self.schemes.append(auth.split(" ", 1)[0])
        await self.app(scope, receive, send)


@dataclass
class Served:
    base: str
    key: str
    log: RequestLog
    pieces: gpd.GeoDataFrame  # the published pieces, working CRS
    marks: list[int] = field(default_factory=list)

    def mark(self) -> None:
        self.marks.append(len(self.log.seen))

    def schemes(self) -> set[str]:
        """Authorization schemes used since the last :meth:`mark`."""
        return set(self.log.schemes[self.marks[-1] if self.marks else 0 :])

    def items_requests(self, collection: str = PIECES) -> list[dict[str, list[str]]]:
        """Item requests for ``collection`` since the last :meth:`mark`."""
        since = self.marks[-1] if self.marks else 0
        path = f"/ogc/collections/{collection}/items"
        return [query for p, query in self.log.seen[since:] if p == path]


def farmland_fields(directory: Path) -> Path:
    fields = [
        box(X0 + 500 + i * 15, Y0 + j * 20, X0 + 500 + i * 15 + 14, Y0 + j * 20 + 19)
        for i in range(FIELDS[0])
        for j in range(FIELDS[1])
    ]
    path = directory / "permanent_farmland.geojson"
    frame = gpd.GeoDataFrame({"dkbh": [f"F{k:04d}" for k in range(len(fields))]}, geometry=fields, crs=4548)
    frame.to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
    return path


def publish_fields_city(api: Api, tmp: Path) -> None:
    for kind in LAYERS:
        path = farmland_fields(tmp) if kind == "permanent_farmland" else write_layer(tmp, kind)
        with path.open("rb") as fh:
            r = api.post("admin", "/api/v1/layers", files={"file": (path.name, fh, "application/geo+json")},
                         data={"kind": kind, "name": kind})
        assert r.status_code == 201, r.text
    assert api.post("admin", "/api/v1/blueprints", json={}).status_code == 201
    assert api.post("admin", "/api/v1/blueprints/v1/publish").status_code == 200


@pytest.fixture(scope="module")
def served(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("gdal")
    app = create_app(settings_for(module_db_url, tmp))
    api = Api(app, TestClient(app), make_keys(app.state.services))  # no lifespan: uvicorn runs it below
    publish_fields_city(api, tmp)
    log = RequestLog(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(log, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    try:
        pieces = app.state.services.published.blueprint("v1").pieces
        yield Served(f"http://127.0.0.1:{port}", api.keys["reviewer"], log, pieces)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        app.state.services.close()


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", "GDAL_HTTP_MAX_RETRY": "0"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, check=False)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def userpwd(served: Served) -> list[str]:
    """Credentials as QGIS's Basic method sends them: any user name, the API key as the password."""
    return ["-oo", f"USERPWD=qgis:{served.key}"]


def same_shape(a: Any, b: Any) -> bool:
    return bool(a.symmetric_difference(b).area < 1e-4 * max(b.area, 1.0))


# ---------------------------------------------------------------- Debian gdal-bin (GDAL 3.6 on Debian 12)


@needs_gdal_bin
def test_ogrinfo_signs_in_with_basic_auth_and_reports_the_pieces(served: Served) -> None:
    out = run(OGRINFO, "-ro", "-so", *userpwd(served), f"OAPIF:{served.base}/ogc", PIECES).stdout
    assert f"Feature Count: {len(served.pieces)}" in out
    assert "Geometry: Polygon" in out or "Geometry: Multi Polygon" in out
    wrong = ["-oo", "USERPWD=qgis:wrong-key"]
    refused = run(OGRINFO, "-ro", "-so", *wrong, f"OAPIF:{served.base}/ogc", ok=False)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    anonymous = run(OGRINFO, "-ro", "-so", f"OAPIF:{served.base}/ogc", ok=False)
    assert anonymous.returncode != 0


@needs_gdal_bin
def test_ogr2ogr_copies_every_piece_with_its_area_1000_a_request(served: Served, tmp_path: Path) -> None:
    """GDAL 3.6 has no page-size discovery (it came in 3.8), so its page size is asked for here; the
    service then answers 1,000 a page and its next links keep that size."""
    out = tmp_path / "pieces.gpkg"
    served.mark()
    started = time.perf_counter()
    run(OGR2OGR, "-f", "GPKG", str(out), "-oo", "PAGE_SIZE=1000", *userpwd(served),
        f"OAPIF:{served.base}/ogc", PIECES)
    seconds = time.perf_counter() - started
    requests = served.items_requests()
    pages = math.ceil(len(served.pieces) / 1000)
    assert all(q["limit"] == ["1000"] for q in requests)
    assert len(requests) <= pages + 1  # GDAL 3.6 reads the first page twice (schema, then data)
    copied = gpd.read_file(out).to_crs(served.pieces.crs)
    assert len(copied) == len(served.pieces)
    assert set(copied["piece_id"]) == set(served.pieces["piece_id"])
    stored = served.pieces.set_index("piece_id")
    for piece_id, geom, area in zip(copied["piece_id"], copied.geometry, copied["area_m2"], strict=True):
        assert geom.area == pytest.approx(stored.at[piece_id, "area_m2"], rel=1e-6, abs=1e-3)
        assert area == pytest.approx(stored.at[piece_id, "area_m2"])
    assert copied.geometry.area.sum() == pytest.approx(stored["area_m2"].sum(), rel=1e-9)
    print(f"ogr2ogr (GDAL 3.6, PAGE_SIZE=1000): {len(copied)} pieces, {len(requests)} item requests, "
          f"{seconds:.2f} s")


@needs_gdal_bin
def test_ogr2ogr_with_crs_epsg_4548_gets_gk_metres_northing_first(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "gk.geojson"
    url = f"OAPIF:{served.base}/ogc/collections/{PIECES}?crs={quote(EPSG_4548, safe='')}"
    served.mark()
    run(OGR2OGR, "-f", "GeoJSON", str(out), "-oo", "PAGE_SIZE=1000", *userpwd(served), url)
    assert all(q["crs"] == [EPSG_4548] for q in served.items_requests())
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert len(features) == len(served.pieces)
    stored = served.pieces.set_index("piece_id").geometry
    for feature in features:
        # GDAL 3.6 passes the served coordinates through: EPSG:4548 axis order, northing then easting
        served_geom = shapely.transform(shape(feature["geometry"]), lambda c: c[:, ::-1])
        assert same_shape(served_geom, stored[feature["properties"]["piece_id"]])


@needs_gdal_bin
def test_cql2_filters_reach_the_service_from_the_url_and_from_where(served: Served, tmp_path: Path) -> None:
    pieces = served.pieces
    probe = rect(450, 300, 700, 500)  # across the red line / farmland edge
    expected = set(pieces[pieces.intersects(probe) & (pieces["kind"] == "permanent_farmland")]["piece_id"])
    assert 10 < len(expected) < len(pieces)
    ring = gpd.GeoSeries([probe], crs=pieces.crs).to_crs(OUTPUT_CRS).iloc[0]
    cql = f"S_INTERSECTS(geometry, {ring.wkt}) AND kind = 'permanent_farmland'"
    url = f"OAPIF:{served.base}/ogc/collections/{PIECES}?filter={quote(cql)}&filter-lang=cql2-text"
    out = tmp_path / "filtered.geojson"
    served.mark()
    run(OGR2OGR, "-f", "GeoJSON", str(out), "-oo", "PAGE_SIZE=1000", *userpwd(served), url)
    assert all(q["filter"] == [cql] for q in served.items_requests())
    got = {f["properties"]["piece_id"] for f in json.loads(out.read_text(encoding="utf-8"))["features"]}
    assert got == expected
    # -where is sent to the service as CQL text (the queryables tell GDAL which fields it may use)
    served.mark()
    info = run(OGRINFO, "-ro", "-so", "-oo", "PAGE_SIZE=1000", *userpwd(served), f"OAPIF:{served.base}/ogc",
               PIECES, "-where", "kind = 'ecological_redline'").stdout
    red = int((pieces["kind"] == "ecological_redline").sum())
    assert f"Feature Count: {red}" in info
    assert any("kind" in q.get("filter", [""])[0] for q in served.items_requests())


# ---------------------------------------------------------------- the GDAL pyogrio bundles (newer)

# pyogrio keeps the GIL while GDAL downloads, and the service runs in this process: read in a child
READ = """
import sys, pyogrio
url, layer, userpwd, out, *options = sys.argv[1:]
frame = pyogrio.read_dataframe(url, layer=layer, USERPWD=userpwd, **dict(o.split("=", 1) for o in options))
pyogrio.write_dataframe(frame, out, driver="GPKG")
"""


def bundled_oapif() -> bool:
    major, minor = pyogrio.__gdal_version__[:2]
    return "OAPIF" in pyogrio.list_drivers() and (major, minor) >= (3, 8)


needs_new_gdal = pytest.mark.skipif(not bundled_oapif(), reason="pyogrio's GDAL has no OAPIF >= 3.8")


def read_with_bundled_gdal(served: Served, out: Path, *options: str) -> gpd.GeoDataFrame:
    url = f"OAPIF:{served.base}/ogc"
    run(sys.executable, "-c", READ, url, PIECES, f"qgis:{served.key}", str(out), *options)
    return gpd.read_file(out)


@needs_new_gdal
def test_gdal_takes_a_large_page_size_from_the_openapi_document(served: Served, tmp_path: Path) -> None:
    served.mark()
    started = time.perf_counter()
    frame = read_with_bundled_gdal(served, tmp_path / "pieces.gpkg")
    seconds = time.perf_counter() - started
    requests = served.items_requests()
    data_pages = [q for q in requests if int(q["limit"][0]) >= 1000]
    assert len(frame) == len(served.pieces)
    assert len(data_pages) == math.ceil(len(served.pieces) / 1000)
    assert len(requests) <= len(data_pages) + 1  # plus one small sample for the schema
    print(f"GDAL {pyogrio.__gdal_version_string__}: {len(frame)} pieces, {len(requests)} item requests, "
          f"{seconds:.2f} s")


@needs_new_gdal
@pytest.mark.parametrize("crs", ["EPSG:4548", "EPSG:4490", "OGC:CRS84"])
def test_gdal_reads_each_offered_crs_in_its_axis_order(served: Served, tmp_path: Path, crs: str) -> None:
    served.mark()
    frame = read_with_bundled_gdal(served, tmp_path / "pieces.gpkg", f"CRS={crs}")
    assert len(frame) == len(served.pieces)
    assert frame.crs is not None and frame.crs.equals(gpd.GeoSeries(crs=crs).crs, ignore_axis_order=True)
    back = frame.to_crs(served.pieces.crs).set_index("piece_id").geometry
    stored = served.pieces.set_index("piece_id").geometry
    assert all(same_shape(back[i], stored[i]) for i in stored.index[:: max(1, len(stored) // 50)])


# ---------------------------------------------------------------- QGIS 3.22 (Debian python3-qgis)

SYSTEM_PYTHON = "/usr/bin/python3"
QGIS_READ = """
import json, os, sys
from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsVectorLayer
url, layer_name, password = sys.argv[1:]
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
auth = QgsApplication.authManager()
auth.setMasterPassword("test-master-password", True)
config = QgsAuthMethodConfig()
config.setName("one-blueprint")
config.setMethod("Basic")  # what a user picks in QGIS: Settings > Options > Authentication > Basic
config.setConfig("username", "qgis")
config.setConfig("password", password)
auth.storeAuthenticationConfig(config)
layer = QgsVectorLayer(f"url='{url}' typename='{layer_name}' authcfg={config.id()}", "pieces", "OAPIF")
ids = [f["piece_id"] for f in layer.getFeatures()] if layer.isValid() else []
print(json.dumps({"valid": layer.isValid(), "count": layer.featureCount(), "ids": ids,
                  "crs": layer.crs().authid()}), flush=True)
os._exit(0)  # QGIS's own teardown may crash in a headless process; the answer is already out
"""


def has_qgis() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60,
                           check=False)
    return probe.returncode == 0


needs_qgis = pytest.mark.skipif(not has_qgis(), reason="no QGIS (setup.sh --test installs python3-qgis)")


def qgis_read(served: Served, tmp: Path, password: str) -> dict[str, Any]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_AUTH_DB_DIR_PATH": str(tmp), "HOME": str(tmp)}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([SYSTEM_PYTHON, "-c", QGIS_READ, f"{served.base}/ogc", PIECES, password],
                            capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@needs_qgis
def test_qgis_signs_in_with_basic_auth_and_pages_1000_a_request(served: Served, tmp_path: Path) -> None:
    served.mark()
    read = qgis_read(served, tmp_path, served.key)
    assert read["valid"] and read["count"] == len(served.pieces)
    assert sorted(read["ids"]) == sorted(served.pieces["piece_id"])
    assert served.schemes() == {"Basic"}
    data_pages = [q for q in served.items_requests() if int(q["limit"][0]) >= 1000]
    assert len(data_pages) == math.ceil(len(served.pieces) / 1000)  # QGIS took the limit from /ogc/api
    assert len(served.items_requests()) <= len(data_pages) + 1
    refused = qgis_read(served, tmp_path / "wrong", "not-the-key")
    assert not refused["valid"]
