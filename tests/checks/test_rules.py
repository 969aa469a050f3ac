"""checks.rules: the built-in policy and the errors for bad rules files."""

from __future__ import annotations

import pytest

from checks.errors import RulesError, UnknownProjectTypeError
from checks.rules import OUTCOMES, load_rules

PROJECT_TYPES = ["industrial", "residential", "public_facility", "linear_infrastructure", "national_major",
                 "agricultural"]

MINIMAL = """
[project_types.industrial]
name_zh = "工业项目"
name_en = "Industrial"
urban_construction = true

[regulations.r]
zh = "规定"
en = "rule"

[defaults]
outcome = "allowed"
regulation = "r"

[kinds.ecological_redline]
default = { outcome = "forbidden", regulation = "r" }
"""


def test_builtin_rules_cover_every_project_type_and_kind(rules, catalogue):
    assert [g.key for g in rules.groups] == PROJECT_TYPES  # today's six stay the group level
    assert list(rules.project_types)[:6] == PROJECT_TYPES
    for kind in [k for k in catalogue if catalogue[k].group != "boundary"] + ["outside_urban_boundary"]:
        for ptype in rules.project_types:
            rule = rules.rule(kind, ptype)
            assert rule.outcome in OUTCOMES
            assert rule.regulation.zh and rule.regulation.en


@pytest.mark.parametrize(("kind", "ptype", "outcome", "cites"), [
    ("ecological_redline", "industrial", "forbidden", "三条控制线"),
    ("ecological_redline", "national_major", "conditional", "国家重大战略项目"),
    ("ecological_redline", "linear_infrastructure", "conditional", "线性基础设施"),
    ("permanent_farmland", "residential", "forbidden", "不得擅自占用"),
    ("permanent_farmland", "national_major", "conditional", "国务院批准"),
    ("geohazard_zone", "public_facility", "conditional", "地质灾害危险性评估"),
    ("geohazard_zone", "agricultural", "allowed", "地质灾害"),
    ("outside_urban_boundary", "residential", "forbidden", "城镇开发边界外"),
    ("outside_urban_boundary", "industrial", "conditional", "城镇开发边界外"),
    ("urban_space", "industrial", "allowed", "主导用途"),
])
def test_builtin_rule_outcomes_and_regulations(rules, kind, ptype, outcome, cites):
    rule = rules.rule(kind, ptype)
    assert rule.outcome == outcome
    assert cites in rule.regulation.zh


def test_unknown_project_type_lists_valid_ones(rules):
    with pytest.raises(UnknownProjectTypeError, match=r"project type 'hotel'.*industrial.*agricultural"):
        rules.rule("ecological_redline", "hotel")


def test_custom_file_replaces_the_policy(tmp_path, catalogue):
    path = tmp_path / "rules.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    rules = load_rules(path, catalogue)
    assert list(rules.project_types) == ["industrial"]
    assert rules.rule("ecological_redline", "industrial").outcome == "forbidden"
    assert rules.rule("permanent_farmland", "industrial").outcome == "allowed"  # [defaults]


@pytest.mark.parametrize(("edit", "message"), [
    (('outcome = "forbidden"', 'outcome = "banned"'), "outcome must be one of"),
    (("[kinds.ecological_redline]", "[kinds.volcano]"), "kinds.volcano is neither a catalogue kind"),
    (("[kinds.ecological_redline]", "[kinds.city_boundary]"), "administrative boundary"),
    (('regulation = "r" }', 'regulation = "nope" }'), "regulation 'nope' is not"),
    (("default = {", "hotel = {"), "unknown project types hotel"),
    (('name_en = "Industrial"', ""), "project_types.industrial.name_en"),
    (("[defaults]", "[defaultz]"), "defaults"),
    (("[kinds.ecological_redline]", "kinds = 3\n[x]"), "kinds"),
])
def test_bad_rules_files_name_the_bad_key(tmp_path, catalogue, edit, message):
    path = tmp_path / "rules.toml"
    path.write_text(MINIMAL.replace(*edit), encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        load_rules(path, catalogue)


def test_missing_rule_without_default_is_an_error(tmp_path, catalogue):
    text = MINIMAL.replace("default = {", "industrial = {") + """
[project_types.residential]
name_zh = "居住"
name_en = "Residential"
"""
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match="no rule for 'residential' and no default"):
        load_rules(path, catalogue)


def test_unreadable_rules_file(tmp_path, catalogue):
    path = tmp_path / "rules.toml"
    path.write_text("this is [ not toml", encoding="utf-8")
    with pytest.raises(RulesError, match="rules file"):
        load_rules(path, catalogue)
    with pytest.raises(RulesError):
        load_rules(tmp_path / "missing.toml", catalogue)
