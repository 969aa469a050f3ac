"""`blueprint check` against the red-team findings of issue #16 (defects 4, 5 and 11).

Each test failed on main at 5dcf82c; the commit that fixed it says how.
"""

from __future__ import annotations

import json
import sys

import geopandas as gpd
import pytest
from shapely.geometry import mapping

from cli import main as cli_main
from runtime.settings import Settings
from runtime.stores import open_stores
from tests.checks.conftest import make_blueprint, parcels, rect


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """v1 published, v2 a draft (built later, never published)."""
    root = tmp_path_factory.mktemp("cli-redteam")
    stores = open_stores(Settings(data_dir=root))
    try:
        stores.blueprints.save_draft(make_blueprint(version="v1"))
        stores.blueprints.publish("v1", by="test")
        stores.blueprints.save_draft(make_blueprint(version="v2"))
    finally:
        stores.close()
    parcels(rect(210, 10, 260, 60)).frame.to_file(root / "urban.gpkg")
    return root


def test_check_against_a_draft_is_refused_like_the_api(run, data_dir):
    """Defect 4: the CLI screened against draft v2 and stored the result; the API answers 409."""
    result = run("check", data_dir / "urban.gpkg", "--version", "v2")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["error"]["code"] == "blueprint_not_published"
    assert run("check", data_dir / "urban.gpkg", "--version", "v1").exit_code == 0


def _unclosed_geojson(path):
    geom = gpd.GeoSeries([rect(210, 10, 260, 60)], crs=4548).to_crs(4326).iloc[0]
    ring = [list(c) for c in mapping(geom)["coordinates"][0]][:-1]  # the closing vertex left out
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"parcel_id": "A"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return path


def test_unclosed_ring_is_closed_and_reported_in_the_cli(run, tmp_path):
    """Defect 5: a GEOS traceback and exit 1 (= "review"). One rule everywhere: closed, and said so."""
    result = run("check", _unclosed_geojson(tmp_path / "open.geojson"))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["verdict"] == "pass"
    assert out["parcels"][0]["repairs"][0]["problem"] == "ring_not_closed", out["parcels"][0]


def test_unclosed_ring_is_closed_and_reported_in_json(tmp_path):
    from layers.ingest import parcels_from_geojson, read_parcels

    path = _unclosed_geojson(tmp_path / "open.geojson")
    from_json = parcels_from_geojson(json.loads(path.read_text()), work_crs=gpd.GeoSeries(crs=4548).crs)
    from_file = read_parcels(path, work_crs=gpd.GeoSeries(crs=4548).crs)
    for parcel_set in (from_json, from_file):
        assert any("not closed" in n for n in parcel_set.notes), parcel_set.notes
        assert [(r.feature_id, r.problem) for r in parcel_set.repairs] == [("A", "ring_not_closed")]
        assert abs(parcel_set.frame.area.iloc[0] - 2500) < 0.01


def test_a_crash_is_never_exit_1_or_2(data_dir, monkeypatch, capsys):
    """An unexpected exception exits 4 with a JSON error, not Python's 1 (which means "review")."""
    import layers.ingest

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(layers.ingest, "read_parcels", boom)
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "argv", ["blueprint", "check", str(data_dir / "urban.gpkg"), "--no-save"])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
    assert exit_info.value.code == 4
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "internal_error"


@pytest.mark.parametrize("name", ["a;b.gpkg", "a\nb.gpkg", "地块 (1);rm -rf.gpkg"])
def test_file_names_with_semicolons_or_newlines(run, data_dir, tmp_path, name):
    """Defect 11: such names could not be opened."""
    target = tmp_path / name
    target.write_bytes((data_dir / "urban.gpkg").read_bytes())
    result = run("check", target, "--no-save")
    assert result.exit_code == 0, result.output
    result = run("layers", "inspect", target, "--kind", "urban_boundary")
    assert result.exit_code == 0, result.output
