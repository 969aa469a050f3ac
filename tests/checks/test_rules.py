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


# --- two levels of project types, citations, requirements, version ----------------------------

LEVELS = MINIMAL.replace("[regulations.r]", '''[project_types.factory]
group = "industrial"
name_zh = "工业厂房"
name_en = "Factory"

[project_types.lab]
group = "industrial"
name_zh = "实验室"
name_en = "Laboratory"
urban_construction = false

[rules]
version = "7"
effective_date = 2026-01-01

[requirements.study]
zh = "论证报告"
en = "Study"

[regulations.r]''') + 'lab = { outcome = "conditional", regulation = "r", requirements = ["study"] }\n'


def test_finer_types_inherit_their_group_rule_and_urban_flag(tmp_path, catalogue):
    path = tmp_path / "rules.toml"
    path.write_text(LEVELS, encoding="utf-8")
    rules = load_rules(path, catalogue)
    assert [g.key for g in rules.groups] == ["industrial"]
    assert [m.key for m in rules.members("industrial")] == ["factory", "lab"]
    assert rules.project_types["factory"].urban_construction is True  # inherited
    assert rules.project_types["lab"].urban_construction is False  # its own
    assert rules.rule("ecological_redline", "factory").outcome == "forbidden"  # the group's (default)
    lab = rules.rule("ecological_redline", "lab")
    assert lab.outcome == "conditional" and [r.zh for r in lab.requirements] == ["论证报告"]
    assert rules.meta.version == "7" and rules.meta.effective_date == "2026-01-01"


def test_a_file_without_version_is_unversioned(tmp_path, catalogue):
    path = tmp_path / "rules.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_rules(path, catalogue).meta.version == "unversioned"


@pytest.mark.parametrize(("edit", "message"), [
    (('group = "industrial"\nname_zh = "工业厂房"', 'group = "mining"\nname_zh = "工业厂房"'),
     "project_types.factory.group 'mining' is not a project type"),
    (('group = "industrial"\nname_zh = "实验室"', 'group = "factory"\nname_zh = "实验室"'),
     "groups are one level deep"),
    (('requirements = ["study"]', 'requirements = ["nope"]'), "requirements 'nope' is not"),
    (('lab = { outcome = "conditional"', 'lab = { outcome = "forbidden"'),
     "requirements belong to conditional outcomes only"),
    (("effective_date = 2026-01-01", 'effective_date = "soon"'), "effective_date must be a date"),
    (('version = "7"', 'versoin = "7"'), "rules has unknown fields versoin"),
    (('zh = "论证报告"', 'zh = "论证报告"\nwhen = 1'), "requirements.study has unknown fields when"),
])
def test_bad_levels_name_the_bad_key(tmp_path, catalogue, edit, message):
    path = tmp_path / "rules.toml"
    assert edit[0] in LEVELS
    path.write_text(LEVELS.replace(*edit), encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        load_rules(path, catalogue)


def test_unknown_project_type_lists_groups_and_their_finer_types(rules):
    with pytest.raises(UnknownProjectTypeError) as info:
        rules.require_project_type("hotel")
    text = str(info.value)
    assert "valid project types: industrial, residential" in text
    assert "public_facility: civic_facility, tourism_facility" in text and "military_facility" in text


def test_either_level_is_a_valid_project_type(rules):
    assert rules.require_project_type("public_facility").is_group
    tourism = rules.require_project_type("tourism_facility")
    assert not tourism.is_group and tourism.group_key == "public_facility"


def test_builtin_rules_record_their_version_and_effective_date(rules):
    assert rules.meta.version and rules.meta.effective_date
    assert len(rules.meta.effective_date) == 10  # YYYY-MM-DD
