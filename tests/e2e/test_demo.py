"""The README's main job (scripts/demo.sh → cli.demo) end to end on the embedded SpatiaLite default."""

from __future__ import annotations

import json

import pytest

from cli import demo


@pytest.mark.slow
def test_demo_builds_publishes_and_screens_on_embedded_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BLUEPRINT_DEV_MODE", "true")
    monkeypatch.delenv("BLUEPRINT_DATABASE_URL", raising=False)
    data = tmp_path / "demo"

    result = demo.run(farmland=300, serve=False, data=data)

    assert (tmp_path / "var" / "blueprint.sqlite").exists()
    assert result["version"] == "v1" and result["blueprint"]["status"] == "published"
    kinds = {layer["kind"] for layer in result["layers"]}
    assert {"ecological_redline", "permanent_farmland", "urban_boundary", "city_boundary"} <= kinds
    assert result["blueprint"]["conflict_count"] > 0  # the generator plants inter-plan conflicts
    screening = result["screening"]
    assert sum(screening["verdicts"].values()) == screening["projects"]
    assert {"pass", "conflict"} <= set(screening["verdicts"])
    assert json.loads(capsys.readouterr().out)["version"] == "v1"

    # a second run reuses data, layers and the published version, and the checks are idempotent
    again = demo.run(farmland=300, serve=False, data=data)
    assert again["version"] == "v1"
    assert [c.get("check_id") for c in again["screening"]["checks"]] == \
        [c.get("check_id") for c in screening["checks"]]
