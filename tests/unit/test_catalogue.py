"""The layer catalogue: built-in kinds and extension by configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from layers.catalogue import load_catalogue
from layers.errors import CatalogueError, UnknownKindError

THREE_LINES = ("ecological_redline", "permanent_farmland", "urban_boundary")
THREE_ZONES = ("urban_space", "agricultural_space", "ecological_space")


def test_builtin_catalogue_has_three_lines_three_zones_and_hazard() -> None:
    cat = load_catalogue()
    assert [k.key for k in cat.in_group("line")] == list(THREE_LINES)
    assert [k.key for k in cat.in_group("zone")] == list(THREE_ZONES)
    assert cat["geohazard_zone"].name_zh == "地质灾害高易发区"
    assert cat["ecological_redline"].label == "生态保护红线 Ecological protection red line"


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownKindError, match=r"unknown layer kind 'wetland'.*ecological_redline"):
        load_catalogue()["wetland"]


def test_catalogue_extends_by_configuration(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text('[kinds.flood_zone]\nname_zh = "洪水风险区"\nname_en = "Flood risk zone"\n'
                     'group = "overlay"\n', encoding="utf-8")
    cat = load_catalogue(extra)
    assert cat["flood_zone"].group == "overlay"
    assert "ecological_redline" in cat


@pytest.mark.parametrize("body, message", [
    ('[kinds.x]\nname_zh = "x"\nname_en = "x"\ngroup = "band"\n', "group must be one of"),
    ('[kinds.x]\nname_zh = "x"\n', "lacks group, name_en"),
    ('[kinds.x]\nname_zh = "x"\nname_en = "x"\ngroup = "line"\ncolor = "red"\n', "unknown fields color"),
    ("not toml [", "catalogue file"),
])
def test_bad_catalogue_file_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    extra = tmp_path / "bad.toml"
    extra.write_text(body, encoding="utf-8")
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(extra)
