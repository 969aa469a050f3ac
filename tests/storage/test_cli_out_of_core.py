"""`blueprint build --out-of-core`: pieces through GeoParquet parts, loaded in bulk, same as in memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from bench.synthetic import scaled_layers
from cli.main import build_app
from runtime.settings import Settings
from runtime.stores import open_stores


@pytest.fixture
def city_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in ("BLUEPRINT_DATABASE_URL", "BLUEPRINT_PRECEDENCE_FILE", "BLUEPRINT_CATALOGUE_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    if db_url.startswith("postgresql"):
        monkeypatch.setenv("BLUEPRINT_DATABASE_URL", db_url)
    settings = Settings()
    layers, boundary = scaled_layers(300, seed=4)
    stores = open_stores(settings)
    try:
        for lay in [*layers, boundary]:
            stores.layers.save(lay)
    finally:
        stores.close()
    return settings


def test_out_of_core_build_stores_the_same_blueprint(city_env: Settings) -> None:
    runner = CliRunner()
    first = runner.invoke(build_app(), ["build"])
    assert first.exit_code == 0, first.stdout
    second = runner.invoke(build_app(), ["build", "--out-of-core"])
    assert second.exit_code == 0, second.stdout
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert (a["version"], b["version"]) == ("v1", "v2")
    assert b["conflicts"] == a["conflicts"]
    for key in ("piece_count", "conflict_count", "area_by_kind_m2"):
        assert b["summary"][key] == a["summary"][key], key
    parts = sorted((city_env.data_dir / "versions" / "v2" / "pieces").glob("part-*.parquet"))
    assert parts, "no GeoParquet parts written"
    stores = open_stores(city_env)
    try:
        one, two = stores.blueprints.get("v1"), stores.blueprints.get("v2")
    finally:
        stores.close()
    assert len(two.pieces) == a["summary"]["piece_count"]
    for column in ("piece_id", "kind", "kinds", "covered_by", "sources"):
        assert list(two.pieces[column]) == list(one.pieces[column]), column
    assert np.abs(two.pieces["area_m2"].to_numpy() - one.pieces["area_m2"].to_numpy()).max() <= 1e-6
    assert shapely.equals(two.pieces.geometry.values, one.pieces.geometry.values).all()
    assert list(two.conflicts["feature_ids"]) == list(one.conflicts["feature_ids"])
