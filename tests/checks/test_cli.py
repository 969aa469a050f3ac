"""`blueprint check` and `blueprint check-batch` end to end on an embedded database."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest

from runtime.settings import Settings
from runtime.stores import open_stores
from tests.checks.conftest import make_blueprint, parcels, rect


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    stores = open_stores(Settings(data_dir=root))
    try:
        draft = make_blueprint(version="v1")
        draft.status = "draft"
        stores.blueprints.save_draft(draft)
        stores.blueprints.publish("v1", by="test")
    finally:
        stores.close()
    parcels(rect(50, 50, 250, 150), rect(210, 10, 260, 60), ids=["A", "B"]).frame.to_file(
        root / "mixed.geojson", driver="GeoJSON")
    parcels(rect(210, 10, 260, 60)).frame.to_file(root / "urban.gpkg")
    parcels(rect(10, 10, 60, 60)).frame.to_file(root / "redline.gpkg")
    parcels(rect(1000, 1000, 1100, 1100)).frame.to_file(root / "far.gpkg")
    return root


@pytest.mark.parametrize(("file", "ptype", "code", "verdict"), [
    ("urban.gpkg", "industrial", 0, "pass"),
    ("redline.gpkg", "linear_infrastructure", 1, "review"),
    ("mixed.geojson", "residential", 2, "conflict"),
])
def test_check_exit_code_follows_the_verdict(run, data_dir, file, ptype, code, verdict):
    result = run("check", data_dir / file, "--project-type", ptype)
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] == verdict and doc["blueprint_version"] == "v1"


def test_check_is_byte_identical_and_stored(run, data_dir):
    first = run("check", data_dir / "mixed.geojson", "-t", "industrial", "--version", "v1").stdout
    second = run("check", data_dir / "mixed.geojson", "-t", "industrial").stdout
    assert first == second
    check_id = json.loads(first)["check_id"]
    stores = open_stores(Settings(data_dir=data_dir))
    try:
        assert stores.checks.get(check_id) == first.strip()
    finally:
        stores.close()


def test_check_geojson_format(run, data_dir):
    result = run("check", data_dir / "mixed.geojson", "-t", "industrial", "--format", "geojson", "--no-save")
    doc = json.loads(result.stdout)
    assert doc["type"] == "FeatureCollection"
    roles = [f["properties"]["role"] for f in doc["features"]]
    assert roles.count("parcel") == 2 and "overlap" in roles


@pytest.mark.parametrize(("args", "code"), [
    (("far.gpkg", "-t", "industrial"), "parcel_outside_city"),
    (("urban.gpkg", "-t", "casino"), "unknown_project_type"),
    (("urban.gpkg", "--version", "v9"), "blueprint_not_found"),
    (("missing.shp",), "unreadable_file"),
])
def test_bad_input_exits_3_with_an_error_code(run, data_dir, args, code):
    result = run("check", data_dir / args[0], *args[1:])
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == code


def test_check_batch_writes_parquet(run, data_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("mixed.geojson", "urban.gpkg", "far.gpkg"):
        (folder / name).write_bytes((data_dir / name).read_bytes())
    out = tmp_path / "results.parquet"
    result = run("check-batch", folder, "--out", out, "-t", "industrial")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["parcels"] == 4 and summary["verdicts"] == {"conflict": 1, "error": 1, "pass": 2}
    table = gpd.read_parquet(out)
    assert set(table["parcel_id"]) == {"mixed.geojson:A", "mixed.geojson:B", "urban.gpkg:1", "far.gpkg:1"}


def test_bad_format_is_bad_input_not_a_conflict_exit(run, data_dir):
    result = run("check", data_dir / "urban.gpkg", "--format", "xml", "--no-save")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["error"]["code"] == "check_error"


def test_renaming_a_parcel_gives_a_new_check_not_an_id_conflict(run, data_dir, tmp_path):
    frame = parcels(rect(210, 10, 260, 60), ids=["N1"]).frame
    frame.assign(name="仓库").to_file(tmp_path / "a.gpkg")
    frame.assign(name="厂房").to_file(tmp_path / "b.gpkg")
    first = run("check", tmp_path / "a.gpkg", "-t", "industrial")
    second = run("check", tmp_path / "b.gpkg", "-t", "industrial")
    assert (first.exit_code, second.exit_code) == (0, 0), second.output
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["parcels"][0]["name"] == "仓库" and b["parcels"][0]["name"] == "厂房"
    assert a["check_id"] != b["check_id"]


def test_check_batch_unwritable_out_is_bad_input(run, data_dir, tmp_path):
    out = tmp_path / "results.parquet"
    out.mkdir()  # a directory where the table should go
    result = run("check-batch", data_dir / "urban.gpkg", "--out", out, "-t", "industrial")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["error"]["code"] == "check_error"
    assert "results.parquet" in json.loads(result.stdout)["error"]["detail"]
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]  # no temp file left behind


def test_rules_prints_the_policy_as_json_and_a_chinese_table(run):
    result = run("rules")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["rules"]["version"] and doc["rules"]["effective_date"]
    assert {"tourism_facility", "industrial"} <= {t["key"] for t in doc["project_types"]}
    row = next(r for r in doc["policy"]
               if r["kind"] == "ecological_redline" and r["project_type"] == "tourism_facility")
    assert row["outcome"] == "conditional" and row["requirements"]
    assert "项目类型 × 管控图层" in result.stderr and "旅游设施" in result.stderr
    table = run("rules", "--table", "-t", "public_facility")
    assert table.exit_code == 0
    assert table.stdout.index("公共服务设施项目") < table.stdout.index("旅游设施")  # group, then beneath it
    assert "自然资发〔2022〕142号" in table.stdout and "工业项目" not in table.stdout


def test_rules_unknown_type_is_bad_input(run):
    result = run("rules", "-t", "hotel")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == "unknown_project_type"


def test_check_accepts_a_finer_project_type(run, data_dir):
    result = run("check", data_dir / "redline.gpkg", "-t", "tourism_facility", "--no-save")
    assert result.exit_code == 1, result.output  # review: conditional in the red line
    doc = json.loads(result.stdout)
    assert doc["requirements"] and doc["rules"]["version"]
