"""The blueprint CLI (build, publish, versions, conflicts, export) on SpatiaLite and PostGIS."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from pyproj import CRS
from typer.testing import CliRunner

from cli.main import build_app
from layers.model import PlanLayer
from runtime.settings import Settings
from runtime.stores import open_stores
from tests.geoms import square

WORK = CRS.from_epsg(4548)


def _layer(kind: str, name: str, geoms: list, ids: list[str] | None = None) -> PlanLayer:
    ids = ids or [str(i + 1) for i in range(len(geoms))]
    frame = gpd.GeoDataFrame({"feature_id": ids, "名称": [name] * len(geoms)}, geometry=geoms, crs=WORK)
    return PlanLayer(kind=kind, name=name, source=f"{name}.geojson", checksum=f"sha-{name}",
                     crs_in="EPSG:4548", frame=frame)


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for the CLI: the embedded default under a tmp data dir, or the PostGIS test database."""
    for key in ("BLUEPRINT_DATABASE_URL", "BLUEPRINT_PRECEDENCE_FILE", "BLUEPRINT_CATALOGUE_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    if db_url.startswith("postgresql"):
        monkeypatch.setenv("BLUEPRINT_DATABASE_URL", db_url)
    settings = Settings()
    stores = open_stores(settings)
    try:
        # urban boundary 0..200 × 0..100; farmland 150..250 overlaps it on 150..200 (5000 m²)
        stores.layers.save(_layer("urban_boundary", "城镇开发边界", [square(0, 0, 200)]))
        stores.layers.save(_layer("permanent_farmland", "永久基本农田", [square(150, 0, 100)], ["F1"]))
        stores.layers.save(_layer("city_boundary", "铜陵市", [square(-50, -50, 400)]))
    finally:
        stores.close()
    return settings


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.stdout


def test_build_publish_versions(cli_env: Settings) -> None:
    code, out = _run("build", "--by", "规划科")
    assert code == 0, out
    built = json.loads(out)
    assert built["version"] == "v1" and built["status"] == "draft"
    assert built["conflicts"]["count"] >= 1
    pair = {(g["kind_a"], g["kind_b"]): g for g in built["conflicts"]["by_pair"]}
    assert pair[("permanent_farmland", "urban_boundary")]["winner"] == "permanent_farmland"
    # the overlap of the two lines: x 150..200, y 0..100
    assert pair[("permanent_farmland", "urban_boundary")]["area_m2"] == pytest.approx(5000, abs=0.01)
    assert built["summary"]["created_by"] == "规划科"

    code, out = _run("publish", "v1", "--by", "局长")
    assert code == 0, out
    assert json.loads(out)["status"] == "published"

    code, out = _run("versions")
    listed = json.loads(out)["versions"]
    assert [(v["version"], v["status"], v["published_by"]) for v in listed] == [("v1", "published", "局长")]

    code, out = _run("build")
    assert code == 0 and json.loads(out)["version"] == "v2"

    stores = open_stores(cli_env)
    try:
        assert stores.layers.summary("永久基本农田")["status"] == "used"
        assert stores.blueprints.latest_published().version == "v1"
    finally:
        stores.close()


def test_domain_errors_exit_3(cli_env: Settings) -> None:
    code, out = _run("publish", "v7")
    assert code == 3 and json.loads(out)["error"]["code"] == "blueprint_not_found"
    assert _run("build")[0] == 0
    assert _run("publish", "v1")[0] == 0
    code, out = _run("publish", "v1")
    assert code == 3 and json.loads(out)["error"]["code"] == "blueprint_immutable"
    code, out = _run("conflicts", "nope")
    assert code == 3


def test_conflicts_geojson_and_csv(cli_env: Settings) -> None:
    assert _run("build")[0] == 0
    code, out = _run("conflicts", "v1")
    assert code == 0
    collection = json.loads(out)
    assert collection["type"] == "FeatureCollection" and collection["features"]
    feature = collection["features"][0]
    lon, lat = feature["geometry"]["coordinates"][0][0]
    assert 116 < lon < 118 and 30 < lat < 32  # EPSG:4326 near Tongling
    assert feature["properties"]["feature_ids"]["permanent_farmland"] == ["F1"]

    code, out = _run("conflicts", "v1", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(collection["features"])
    assert rows[0]["winner"] and 116 < float(rows[0]["centroid_lon"]) < 118


def test_export_geopackage(cli_env: Settings, tmp_path: Path) -> None:
    assert _run("build")[0] == 0
    out_path = tmp_path / "exports" / "blueprint_v1.gpkg"
    code, out = _run("export", "v1", str(out_path))
    assert code == 0, out
    report = json.loads(out)
    layers = {name for name, _ in pyogrio.list_layers(out_path)}
    assert layers == {"pieces", "conflicts"}
    pieces = gpd.read_file(out_path, layer="pieces")
    assert len(pieces) == report["pieces"] and CRS.from_user_input(pieces.crs).to_epsg() == 4548
    assert pieces.geometry.area.sum() == pytest.approx(400 * 400, rel=1e-9)
    assert [p.name for p in out_path.parent.iterdir()] == ["blueprint_v1.gpkg"]  # no temp file left

    code, out = _run("export", "v1", str(tmp_path / "x.shp"))
    assert code == 3 and json.loads(out)["error"]["code"] == "export_failed"

