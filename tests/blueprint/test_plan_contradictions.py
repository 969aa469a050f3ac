"""[[plan_contradictions]] of the precedence: detailed-plan land uses against the control lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from blueprint.errors import PrecedenceError
from blueprint.precedence import RULE_PLAN_ON_LINE, RULE_PLAN_OUTSIDE_LINE, load_precedence
from layers.catalogue import load_catalogue

HEAD = """
[lines]
order = ["ecological_redline", "permanent_farmland", "urban_boundary"]
[zones]
order = ["ecological_space", "agricultural_space", "urban_space"]
"""


def test_the_built_in_precedence_guards_red_line_farmland_and_boundary():
    found = load_precedence(None, load_catalogue()).plan_contradictions
    assert [(c.line, c.where, c.land_use, c.rule) for c in found] == [
        ("ecological_redline", "on", "construction", RULE_PLAN_ON_LINE),
        ("permanent_farmland", "on", "construction", RULE_PLAN_ON_LINE),
        ("urban_boundary", "outside", "urban_construction", RULE_PLAN_OUTSIDE_LINE),
    ]


@pytest.mark.parametrize(("entry", "needle"), [
    ('kind = "detailed_plan"\nland_use = "housing"\nline = "urban_boundary"\nwhere = "outside"', "housing"),
    ('kind = "detailed_plan"\nland_use = "construction"\nline = "urban_boundary"\nwhere = "near"', "where"),
    ('kind = "geohazard_zone"\nland_use = "construction"\nline = "urban_boundary"\nwhere = "on"',
     "land_use field"),
    ('kind = "detailed_plan"\nland_use = "construction"\nline = "urban_space"\nwhere = "on"', "ranked line"),
    ('kind = "detailed_plan"\nland_use = "construction"\nline = "urban_boundary"', "exactly the keys"),
])
def test_a_bad_plan_contradiction_is_refused_by_name(tmp_path: Path, entry: str, needle: str):
    path = tmp_path / "precedence.toml"
    path.write_text(HEAD + "[[plan_contradictions]]\n" + entry + "\n", encoding="utf-8")
    with pytest.raises(PrecedenceError, match="plan contradiction #1") as err:
        load_precedence(path, load_catalogue())
    assert needle in str(err.value)
