"""`blueprint layers import|inspect` and `blueprint parcels convert` through typer's CliRunner."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from typer.testing import CliRunner

from cli.main import build_app
from layers.bubiao import read_bubiao
from layers.ingest import read_parcels


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("BLUEPRINT_DATABASE_URL", raising=False)
    runner = CliRunner()
    app = build_app()

    def invoke(*args: str):
        result = runner.invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    return invoke


def test_inspect_prints_the_summary_and_stores_nothing(run, layer_data, tmp_path):
    result = run("layers", "inspect", str(layer_data / "redline_gbk_nocpg.zip"),
                 "--kind", "ecological_redline")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feature_count"] == 2
    assert summary["crs_in"] == "EPSG:4527" and summary["crs_out"] == "EPSG:4548"
    assert summary["area_m2"] == 47_500.0
    assert summary["encoding"] == "GB18030"
    assert "名称" in summary["columns"]
    assert "GB18030" in result.stderr  # notes go to stderr
    assert not (tmp_path / "var").exists()


def test_inspect_without_kind(run, layer_data):
    result = run("layers", "inspect", str(layer_data / "urban_wkt_gbk.csv"), "--crs", "EPSG:4548")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["area_m2"] == 15_000.0


def test_import_stores_the_layer(run, layer_data, tmp_path):
    result = run("layers", "import", str(layer_data / "redline_gbk_nocpg.zip"),
                 "--kind", "ecological_redline", "--name", "红线")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["stored"]["name"] == "红线" and summary["stored"]["status"] == "draft"
    from runtime.settings import Settings
    from runtime.stores import open_stores

    stores = open_stores(Settings(data_dir=tmp_path / "var"))
    try:
        stored = stores.layers.get("红线")
    finally:
        stores.close()
    assert list(stored.frame["名称"]) == ["水源涵养生态保护红线", "水土保持生态保护红线"]
    assert abs(stored.frame.geometry.area.sum() - 47_500.0) < 0.01
    again = run("layers", "import", str(layer_data / "redline_gbk_nocpg.zip"), "--kind", "ecological_redline",
                "--name", "红线")
    assert again.exit_code == 3
    assert json.loads(again.stdout)["error"]["code"] == "layer_exists"
    replaced = run("layers", "import", str(layer_data / "redline_gbk_nocpg.zip"), "--kind",
                   "ecological_redline", "--name", "红线", "--replace")
    assert replaced.exit_code == 0, replaced.output


def test_domain_errors_exit_3_with_json(run, layer_data, tmp_path):
    result = run("layers", "import", str(layer_data / "swapped_latlon.geojson"), "--kind", "urban_boundary")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "coordinates_out_of_range"
    assert "swapped_latlon.geojson" in error["detail"]
    assert "Traceback" not in result.output
    missing = run("layers", "inspect", str(layer_data / "urban_wkt_gbk.csv"))
    assert missing.exit_code == 3
    assert json.loads(missing.stdout)["error"]["code"] == "crs_missing"
    unknown = run("layers", "inspect", str(layer_data / "urban_wkt_gbk.csv"), "--crs", "EPSG:4548",
                  "--kind", "nope")
    assert json.loads(unknown.stdout)["error"]["code"] == "unknown_kind"


def test_convert_shapefile_zip_to_bubiao_and_back(run, layer_data, tmp_path, work_crs):
    out = tmp_path / "out" / "parcels.txt"
    result = run("parcels", "convert", str(layer_data / "redline_gbk_nocpg.zip"), str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["parcel_count"] == 2 and summary["crs_out"] == "EPSG:4527"
    parsed = read_bubiao(out)
    assert parsed.crs.to_epsg() == 4527
    assert list(parsed.frame["parcel_id"]) == ["101", "102"]
    back = read_parcels(out, work_crs=work_crs)
    assert [round(a, 2) for a in back.frame.geometry.area] == [7_500.0, 40_000.0]
    assert list(tmp_path.joinpath("out").iterdir()) == [out]  # no temp files left behind


def test_convert_to_plain_gk_bubiao(run, layer_data, tmp_path):
    out = tmp_path / "plain.txt"
    result = run("parcels", "convert", str(layer_data / "legacy_crs_4548.geojson"), str(out),
                 "--out-crs", "EPSG:4548")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["crs_out"] == "EPSG:4548"


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".fgb", ".shp", ".zip", ".csv", ".parquet", ".kml"])
def test_convert_between_formats_keeps_area(run, layer_data, tmp_path, work_crs, suffix):
    out = tmp_path / f"parcels{suffix}"
    result = run("parcels", "convert", str(layer_data / "redline_gbk_nocpg.zip"), str(out))
    assert result.exit_code == 0, result.output
    crs = "EPSG:4548" if suffix == ".csv" else None
    back = read_parcels(out, work_crs=work_crs, crs=crs)
    assert abs(back.frame.geometry.area.sum() - 47_500.0) < 0.01
    names = set(back.frame["名称"]) if "名称" in back.frame.columns else set(back.frame["name"])
    assert "水源涵养生态保护红线" in names


def test_convert_failure_leaves_nothing(run, layer_data, tmp_path):
    out = tmp_path / "x.txt"
    result = run("parcels", "convert", str(layer_data / "swapped_latlon.geojson"), str(out))
    assert result.exit_code == 3
    assert list(tmp_path.iterdir()) == []
    bad = run("parcels", "convert", str(layer_data / "legacy_crs_4548.geojson"), str(tmp_path / "x.dwg"))
    assert json.loads(bad.stdout)["error"]["code"] == "unsupported_format"


def test_geojson_output_is_rfc7946(run, layer_data, tmp_path):
    out = tmp_path / "p.geojson"
    run("parcels", "convert", str(layer_data / "legacy_crs_4548.geojson"), str(out))
    frame = gpd.read_file(out)
    assert frame.crs.to_epsg() == 4326
    assert 117 < frame.geometry.iloc[0].centroid.x < 118
