"""The built-in rules against the regulations' own text: one table per regulation item.

Each row was written from the regulation (quoted in the comment above each table), not from
checks/rules.toml: project type × control kind → the outcome the text gives, the requirements the text
asks the applicant for (a subset: the rules may ask for more), and the citation the rule must carry.
"""

from __future__ import annotations

import pytest

from checks.rules import Rules

RED = "ecological_redline"
FARM = "permanent_farmland"
OUTSIDE = "outside_urban_boundary"
HAZARD = "geohazard_zone"
N142 = "自然资发〔2022〕142号"


def assert_rule(rules: Rules, ptype: str, kind: str, outcome: str, needs: set[str],
                number: str, article: str) -> None:
    rule = rules.rule(kind, ptype)
    assert rule.outcome == outcome, (ptype, kind, rule.outcome)
    keys = {r.key for r in rule.requirements}
    assert needs <= keys, (ptype, kind, keys)
    if outcome != "conditional":
        assert not rule.requirements
    assert rule.regulation.number == number, (ptype, kind, rule.regulation.key)
    assert article in rule.regulation.article, (ptype, kind, rule.regulation.article)
    assert rule.regulation.document in rule.regulation.citation_zh


# 《关于加强生态保护红线管理的通知（试行）》(自然资发〔2022〕142号) 一（一）:
#   “生态保护红线内自然保护地核心保护区外，禁止开发性、生产性建设活动，在符合法律法规的前提下，
#   仅允许以下对生态功能不造成破坏的有限人为活动”, items 1–10.
# 第1项 “管护巡护、保护执法、科学研究、调查监测、测绘导航、防灾减灾救灾、军事国防、疫情防控等活动
#   及相关的必要设施修筑”;
# 第2项 原住居民 “不扩大现有建设用地……修筑生产生活设施”;
# 第3项 “经依法批准的考古调查发掘……和文物保护活动”;
# 第5项 “不破坏生态功能的适度参观旅游……符合相关规划的配套性服务设施”;
# 第6项 “必须且无法避让、符合县级以上国土空间规划的线性基础设施、通讯和防洪、供水设施建设”;
# 第7项 “地质调查与矿产资源勘查开采……应落实减缓生态环境影响措施，严格执行绿色勘查”.
LINEAR = {"unavoidability_report", "county_plan_conformity"}
REDLINE_142 = [
    # (project type, outcome, requirements at least, article)
    ("research_monitoring", "conditional", set(), "一（一）第1项"),
    ("disaster_prevention", "conditional", set(), "一（一）第1项"),
    ("military_facility", "conditional", {"military_approval"}, "一（一）第1项"),
    ("resident_livelihood", "conditional", {"existing_land_proof"}, "一（一）第2项"),
    ("archaeology", "conditional", {"excavation_approval"}, "一（一）第3项"),
    ("tourism_facility", "conditional", {"related_plan_conformity"}, "一（一）第5项"),
    ("linear_infrastructure", "conditional", LINEAR, "一（一）第6项"),
    ("transport_line", "conditional", LINEAR, "一（一）第6项"),
    ("power_pipeline", "conditional", LINEAR, "一（一）第6项"),
    ("water_works", "conditional", LINEAR, "一（一）第6项"),
    ("telecom_facility", "conditional", LINEAR, "一（一）第6项"),
    ("mineral_exploration", "conditional", {"exploration_right", "green_exploration_plan"}, "一（一）第7项"),
]


@pytest.mark.parametrize(("ptype", "outcome", "needs", "article"), REDLINE_142,
                         ids=[f"142号{r[3]}-{r[0]}" for r in REDLINE_142])
def test_redline_limited_activities_of_notice_142(rules, ptype, outcome, needs, article):
    assert_rule(rules, ptype, RED, outcome, needs, N142, article)


# 142号 一（一）: anything not among the ten items is a “开发性、生产性建设活动” and prohibited
# (the group rule cites the 2019 guideline, 厅字〔2019〕48号, which says the same:
# “其他区域严格禁止开发性、生产性建设活动”).
NOT_ON_THE_LIST = ["industrial", "manufacturing", "logistics_storage", "residential", "urban_housing",
                   "resettlement_housing", "public_facility", "civic_facility", "funeral_facility",
                   "religious_facility", "strategic_reserve", "rural_revitalisation", "agricultural",
                   "planting_facility", "livestock_facility"]


@pytest.mark.parametrize("ptype", NOT_ON_THE_LIST)
def test_redline_prohibits_what_the_ten_items_do_not_list(rules, ptype):
    assert_rule(rules, ptype, RED, "forbidden", set(), "厅字〔2019〕48号", "")


# Issue 19 / 142号 on national major projects outside the ten items: an unavoidability opinion of the
# provincial government (不可避让论证意见) and approval. The article of 142号 for this was not verified.
@pytest.mark.parametrize("ptype", ["national_major", "national_key_infrastructure"])
def test_national_major_projects_in_the_red_line_need_unavoidability_opinion_and_approval(rules, ptype):
    assert_rule(rules, ptype, RED, "conditional",
                {"unavoidability_report", "provincial_unavoidability_opinion", "state_council_approval"},
                "厅字〔2019〕48号", "")


# 《中华人民共和国土地管理法》(2019年修正) 第三十五条:
#   “永久基本农田经依法划定后，任何单位和个人不得擅自占用或者改变其用途。国家能源、交通、水利、
#   军事设施等重点建设项目选址确实难以避让永久基本农田，涉及农用地转用或者土地征收的，必须经国务院批准。”
# Replacement (补划) and the necessity study: 自然资规〔2018〕3号.
FARMLAND_35 = [
    ("national_major", "conditional"),
    ("national_key_infrastructure", "conditional"),  # 能源、交通、水利
    ("military_facility", "conditional"),  # 军事设施
    ("linear_infrastructure", "conditional"),
    ("transport_line", "conditional"),  # 交通
    ("power_pipeline", "conditional"),  # 能源
    ("water_works", "conditional"),  # 水利
    ("telecom_facility", "forbidden"),  # not among energy, transport, water, military
    ("industrial", "forbidden"),
    ("manufacturing", "forbidden"),
    ("residential", "forbidden"),
    ("resettlement_housing", "forbidden"),
    ("public_facility", "forbidden"),
    ("tourism_facility", "forbidden"),
    ("rural_revitalisation", "forbidden"),
    ("strategic_reserve", "forbidden"),
]


@pytest.mark.parametrize(("ptype", "outcome"), FARMLAND_35, ids=[f"土地管理法35-{r[0]}" for r in FARMLAND_35])
def test_permanent_farmland_land_administration_law_art_35(rules, ptype, outcome):
    needs = {"state_council_approval", "farmland_replacement_plan"} if outcome == "conditional" else set()
    assert_rule(rules, ptype, FARM, outcome, needs, "2019年修正", "第三十五条")


# 设施农业用地 (自然资规〔2019〕4号, item numbering not verified): planting facilities keeping the plough
# layer may use permanent farmland; damaging it, or livestock facilities that cannot avoid it → 补划.
@pytest.mark.parametrize("ptype", ["agricultural", "planting_facility", "livestock_facility"])
def test_facility_agriculture_on_farmland(rules, ptype):
    assert_rule(rules, ptype, FARM, "conditional", {"facility_agri_filing", "facility_replacement_plan"},
                "自然资规〔2019〕4号", "")


# 《自然资源部关于做好城镇开发边界管理的通知（试行）》(自然资发〔2023〕193号): outside the boundary “不得进行
# 城镇集中建设，不得规划建设各类开发区和产业园区，不得规划城镇居住用地”; scattered construction land with a
# specific siting requirement may be planned; linear infrastructure and the special uses (军事、宗教、殡葬、
# 防灾减灾、战略储备) and rural revitalisation projects are allowed. (Paragraph numbering not verified.)
OUTSIDE_193 = [
    ("residential", "forbidden", set()),
    ("urban_housing", "forbidden", set()),
    ("resettlement_housing", "forbidden", set()),
    ("industrial", "conditional", {"special_siting_study"}),
    ("manufacturing", "conditional", {"special_siting_study"}),
    ("logistics_storage", "conditional", {"special_siting_study"}),
    ("tourism_facility", "conditional", {"special_siting_study"}),
    ("linear_infrastructure", "allowed", set()),
    ("transport_line", "allowed", set()),
    ("military_facility", "allowed", set()),
    ("religious_facility", "allowed", set()),
    ("funeral_facility", "allowed", set()),
    ("disaster_prevention", "allowed", set()),
    ("strategic_reserve", "allowed", set()),
    ("rural_revitalisation", "allowed", set()),
]


@pytest.mark.parametrize(("ptype", "outcome", "needs"), OUTSIDE_193,
                         ids=[f"193号-{r[0]}" for r in OUTSIDE_193])
def test_outside_the_urban_boundary_notice_193(rules, ptype, outcome, needs):
    assert_rule(rules, ptype, OUTSIDE, outcome, needs, "自然资发〔2023〕193号", "")


# 《地质灾害防治条例》(国务院令第394号) 第二十一条: “在地质灾害易发区内进行工程建设，应当在可行性研究阶段进行
# 地质灾害危险性评估，并将评估结果作为可行性研究报告的组成部分”; 第二十四条: 可能引发或遭受地质灾害的建设工程
# “应当配套建设地质灾害治理工程”. Farming is not engineering construction.
HAZARD_21 = [
    ("industrial", "conditional"), ("resettlement_housing", "conditional"),
    ("civic_facility", "conditional"), ("tourism_facility", "conditional"),
    ("transport_line", "conditional"), ("military_facility", "conditional"),
    ("resident_livelihood", "conditional"),  # 修筑生产生活设施 is construction
    ("agricultural", "allowed"), ("planting_facility", "allowed"),
]


@pytest.mark.parametrize(("ptype", "outcome"), HAZARD_21, ids=[f"地灾条例21-{r[0]}" for r in HAZARD_21])
def test_geohazard_regulations_art_21(rules, ptype, outcome):
    needs = ({"geohazard_assessment_report", "geohazard_mitigation_works"} if outcome == "conditional"
             else set())
    assert_rule(rules, ptype, HAZARD, outcome, needs, "国务院令第394号", "第二十一条")


# Today's six types stay the group level with the outcomes they had before the finer types came
# (checks/rules.toml at dc9830c), so earlier results stay valid. Kinds in catalogue order:
KINDS = [RED, FARM, "urban_boundary", "urban_space", "agricultural_space", "ecological_space", HAZARD,
         OUTSIDE]
SIX_BEFORE = {
    "industrial": "ffaacccc",
    "residential": "ffaacccf",
    "public_facility": "ffaaaaca",
    "linear_infrastructure": "ccaaaaca",
    "national_major": "ccaaaaca",
    "agricultural": "fcaaaaaa",
}


@pytest.mark.parametrize("group", list(SIX_BEFORE))
def test_the_six_groups_keep_their_outcomes(rules, group):
    letters = "".join(rules.rule(kind, group).outcome[0] for kind in KINDS)
    assert letters == SIX_BEFORE[group]
    assert rules.project_types[group].is_group


def test_every_rule_cites_a_document_and_article_and_every_conditional_lists_requirements(rules, catalogue):
    kinds = [k for k in catalogue if catalogue[k].group != "boundary"] + [OUTSIDE]
    for row in rules.policy(kinds):
        reg = row["regulation"]
        if reg["key"] == "no_specific_rule":  # "no restriction": nothing to cite
            assert row["outcome"] == "allowed"
            continue
        assert reg["document"].startswith("《") and reg["number"] and reg["article"], row
        if row["outcome"] == "conditional":
            assert row["requirements"], row


def test_finer_types_follow_their_group_unless_a_regulation_says_otherwise(rules, catalogue):
    """Where the rules file gives no rule of its own, a finer type has exactly its group's rule."""
    kinds = [k for k in catalogue if catalogue[k].group != "boundary"] + [OUTSIDE]
    assert rules.rule(RED, "civic_facility") == _as(rules.rule(RED, "public_facility"), "civic_facility")
    assert rules.rule(FARM, "manufacturing") == _as(rules.rule(FARM, "industrial"), "manufacturing")
    for ptype in rules.project_types.values():
        assert rules.project_types[ptype.group_key].is_group
        for kind in kinds:
            assert rules.rule(kind, ptype.key).outcome in ("forbidden", "conditional", "allowed")


def _as(rule, key):
    from dataclasses import replace

    return replace(rule, project_type=key)
