"""Precedence configuration: the default file and every way a precedence file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from blueprint.errors import PrecedenceError
from blueprint.precedence import RULE_LINE_ZONE, RULE_LINES, RULE_ZONES, load_precedence
from layers.catalogue import load_catalogue

CAT = load_catalogue()
GOOD_ZONES = '[zones]\norder = ["ecological_space", "agricultural_space", "urban_space"]\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "precedence.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_precedence_follows_the_national_rule() -> None:
    p = load_precedence(None, CAT)
    assert p.order == ("ecological_redline", "permanent_farmland", "urban_boundary",
                       "ecological_space", "agricultural_space", "urban_space")
    assert p.conflict("permanent_farmland", "ecological_redline") == (
        "ecological_redline", "permanent_farmland", RULE_LINES)
    assert p.conflict("urban_space", "agricultural_space") == (
        "agricultural_space", "urban_space", RULE_ZONES)
    assert p.conflict("urban_space", "permanent_farmland") == ("permanent_farmland", "urban_space",
                                                               RULE_LINE_ZONE)
    assert p.conflict("urban_boundary", "ecological_space") == ("ecological_space", "urban_boundary",
                                                                RULE_LINE_ZONE)
    assert p.conflict("ecological_redline", "ecological_space") is None
    assert p.conflict("geohazard_zone", "urban_boundary") is None


def test_a_custom_file_can_reorder(tmp_path: Path) -> None:
    lines = '[lines]\norder = ["permanent_farmland", "ecological_redline", "urban_boundary"]\n'
    path = _write(tmp_path, lines + GOOD_ZONES)
    p = load_precedence(path, CAT)
    assert p.conflict("ecological_redline", "permanent_farmland")[0] == "permanent_farmland"
    assert p.contradictions == ()


@pytest.mark.parametrize(("text", "message"), [
    ('[lines]\norder = ["ecological_redline", "wetland"]\n' + GOOD_ZONES, "unknown kind 'wetland'"),
    ('[lines]\norder = ["ecological_redline", "urban_space"]\n' + GOOD_ZONES, "zone kind, not a line"),
    ('[lines]\norder = ["ecological_redline", "ecological_redline"]\n' + GOOD_ZONES, "twice"),
    (GOOD_ZONES, r"\[lines\] needs an 'order'"),
    ('[lines]\norder = ["ecological_redline"]\n' + GOOD_ZONES + "[extra]\n", "unknown sections extra"),
    ('[lines]\norder = ["ecological_redline"\n', "not valid TOML"),
    ('[lines]\norder = ["urban_boundary"]\n' + GOOD_ZONES
     + '[[contradictions]]\nline = "urban_boundary"\nzone = "ecological_space"\nwinner = "geohazard_zone"\n',
     "winner 'geohazard_zone' must be its line or its zone"),
    ('[lines]\norder = ["urban_boundary"]\n' + GOOD_ZONES
     + '[[contradictions]]\nline = "permanent_farmland"\nzone = "urban_space"\nwinner = "urban_space"\n',
     "not a ranked line kind"),
])
def test_bad_precedence_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PrecedenceError, match=message) as err:
        load_precedence(_write(tmp_path, text), CAT)
    assert err.value.code == "invalid_precedence"
    assert "precedence file" in err.value.user_message


def test_missing_file_is_a_precedence_error(tmp_path: Path) -> None:
    with pytest.raises(PrecedenceError, match="cannot read"):
        load_precedence(tmp_path / "nope.toml", CAT)


def test_unranked_kind_is_an_error_when_asked() -> None:
    with pytest.raises(PrecedenceError, match="does not rank kind 'geohazard_zone'"):
        load_precedence(None, CAT).rank("geohazard_zone")
