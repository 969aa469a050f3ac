"""The README's main job (scripts/demo.sh → cli.demo) end to end on the embedded SpatiaLite default."""

from __future__ import annotations

import json

import pytest

from cli import demo


@pytest.fixture
def demo_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BLUEPRINT_DEV_MODE", "true")
    monkeypatch.delenv("BLUEPRINT_DATABASE_URL", raising=False)
    return tmp_path


def farmland_count(result):
    return next(layer["feature_count"] for layer in result["layers"] if layer["kind"] == "permanent_farmland")


@pytest.mark.slow
def test_demo_builds_publishes_and_screens_on_embedded_default(demo_env, capsys):
    data = demo_env / "demo"

    result = demo.run(farmland=300, serve=False, data=data)

    assert (demo_env / "var" / "blueprint.sqlite").exists()
    assert result["version"] == "v1" and result["blueprint"]["status"] == "published"
    assert result["data_dir"] == str((demo_env / "var").resolve())
    assert result["demo_data"] == str(data.resolve()) and result["fresh_database"] is True
    kinds = {layer["kind"] for layer in result["layers"]}
    assert {"ecological_redline", "permanent_farmland", "urban_boundary", "city_boundary"} <= kinds
    assert result["blueprint"]["conflict_count"] > 0  # the generator plants inter-plan conflicts
    screening = result["screening"]
    assert sum(screening["verdicts"].values()) == screening["projects"]
    assert {"pass", "conflict"} <= set(screening["verdicts"])
    # 策划生成: three projects in planning, three of four departments answered, one still to answer
    assert len(screening["planning"]) == 3
    rounds = [p["round"] for p in screening["planning"]]
    assert all(r["pending"] == 1 and r["agree_with_conditions"] == 1 for r in rounds), rounds
    assert json.loads(capsys.readouterr().out)["version"] == "v1"

    # --keep reuses data, layers and the published version, and the checks are idempotent
    again = demo.run(farmland=300, serve=False, data=data, keep=True)
    assert again["version"] == "v1" and again["fresh_database"] is False
    assert [c.get("check_id") for c in again["screening"]["checks"]] == \
        [c.get("check_id") for c in screening["checks"]]
    assert again["screening"]["planning"] == screening["planning"]


@pytest.mark.slow
def test_demo_rerun_with_other_farmland_reports_the_new_data(demo_env, capsys):
    """Issue #18: a second run with another --farmland never reports the first run's layers or version."""
    data = demo_env / "demo"
    first = demo.run(farmland=300, serve=False, data=data)
    second = demo.run(farmland=120, serve=False, data=data)
    notes = capsys.readouterr().err
    # the same generated data built into a database of its own: what the second run must match
    reference = demo.run(farmland=120, serve=False, data=demo_env / "reference")

    assert farmland_count(first) == 300 and farmland_count(second) == 120
    assert second["blueprint"]["piece_count"] == reference["blueprint"]["piece_count"]
    assert second["blueprint"]["piece_count"] != first["blueprint"]["piece_count"]
    assert second["version"] == "v1" and second["fresh_database"] is True
    assert "starting fresh" in notes and "generating into" in notes


@pytest.mark.slow
def test_demo_keep_refuses_a_database_built_from_other_data(demo_env, capsys):
    data = demo_env / "demo"
    demo.run(farmland=300, serve=False, data=data)

    with pytest.raises(demo.DemoStaleError, match=r"permanent_farmland|永久基本农田"):
        demo.run(farmland=120, serve=False, data=data, keep=True)


@pytest.mark.slow
def test_demo_never_deletes_a_database_it_did_not_fill(demo_env, capsys):
    from layers.catalogue import load_catalogue
    from layers.ingest import read_layer
    from runtime.settings import get_settings
    from runtime.stores import open_stores

    data = demo_env / "demo"
    demo.ensure_demo_data(data, 120)
    settings = get_settings()
    stores = open_stores(settings)
    layer = read_layer(data / "layers" / "urban_boundary.geojson", "urban_boundary",
                       work_crs=settings.work_crs, catalogue=load_catalogue(None), name="城镇开发边界-规划局")
    stores.layers.save(layer, by="planner-wang")
    stores.close()

    with pytest.raises(demo.DemoError, match="城镇开发边界-规划局"):
        demo.run(farmland=120, serve=False, data=data)
    assert (demo_env / "var" / "blueprint.sqlite").exists()


@pytest.mark.slow
def test_demo_map_names_the_four_districts(demo_env, capsys):
    """Issue #12: the demo's boundary layer is the four 区县 (their union is the city outline), so the map
    is labelled with their names; the build's coverage check passes with them as the boundary."""
    from runtime.services import Services
    from runtime.settings import Settings
    from runtime.stores import open_stores
    from viewer.boundary import boundary_labels
    from viewer.store_source import StoreViewerSource

    result = demo.run(farmland=300, serve=False, data=demo_env / "demo")
    settings = Settings()
    stores = open_stores(settings)
    try:
        boundary = StoreViewerSource(Services(settings, stores)).boundary(result["version"])
        labels = boundary_labels(boundary)["labels"]
    finally:
        stores.close()
    assert sorted(label["name"] for label in labels) == sorted(["铜官区", "义安区", "郊区", "枞阳县"])
    assert labels[0]["name"] == "枞阳县"  # the largest first: the page places labels in this order
    west, south, east, north = (117.0, 30.5, 118.3, 31.2)  # 铜陵市
    assert all(west < label["lon"] < east and south < label["lat"] < north for label in labels)
