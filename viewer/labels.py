"""viewer.labels: Chinese-first names for every code a person sees (verdicts, rules, statuses, decisions)."""

from __future__ import annotations

from collections.abc import Mapping

Label = tuple[str, str]

VERDICT: Mapping[str, Label] = {"pass": ("通过", "Pass"), "review": ("需审查", "Review"),
                                "conflict": ("冲突", "Conflict")}
RULE: Mapping[str, Label] = {"forbidden": ("禁止", "forbidden"), "conditional": ("有条件", "conditional"),
                             "allowed": ("允许", "allowed")}
STATUS: Mapping[str, Label] = {
    "planning": ("策划中", "Planning"),
    "submitted": ("已入库", "Submitted"),
    "screened": ("已检测", "Screened"),
    "in_review": ("联合审查中", "In joint review"),
    "cleared": ("审查通过", "Cleared"),
    "rejected": ("审查未通过", "Rejected"),
}
DECISION: Mapping[str, Label] = {
    "approved": ("同意", "Approved"),
    "approved_with_conditions": ("有条件同意", "Approved with conditions"),
    "rejected": ("不同意", "Rejected"),
    "deferred": ("暂缓", "Deferred"),
}
# what layers.geometry reports (Repair.problem / Repair.action), in words a planner reads
REPAIR_PROBLEM: Mapping[str, Label] = {
    "invalid": ("几何无效（自相交等）", "invalid geometry"),
    "collapsed": ("无效且修复后无面积", "invalid, no area left"),
    "empty": ("空几何", "empty geometry"),
    "z_dropped": ("带高程 Z 值", "had Z values"),
    "no_polygon": ("不含面", "no polygon"),
    "collection": ("几何集合", "geometry collection"),
}
REPAIR_ACTION: Mapping[str, Label] = {
    "make_valid": ("已自动修复为有效面", "made valid"),
    "dropped": ("已剔除", "dropped"),
    "dropped Z coordinates": ("已去除 Z 值", "Z dropped"),
    "kept polygonal parts": ("保留其中的面", "polygonal parts kept"),
}


def label(table: Mapping[str, Label], code: object) -> Label:
    """The (zh, en) label of ``code``; an unknown code is shown as it is rather than hidden."""
    text = "" if code is None else str(code)
    return table.get(text, (text, text))


def zh_en(table: Mapping[str, Label], code: object) -> str:
    """``"通过 Pass"``: the one-string form for reports and tables."""
    zh, en = label(table, code)
    return zh if zh == en else f"{zh} {en}"

# planning conditions (控规) and regional assessments (区域评估) of a check: issue 14
ASSESSMENT_STATUS: Mapping[str, Label] = {
    "exempt": ("可复用（免于单独评估）", "Reusable (exempt)"),
    "partial": ("部分覆盖（须补充评估）", "Partly covered (the rest is due)"),
    "expired": ("已过期（须重新评估）", "Expired (to be redone)"),
    "due": ("须单独评估", "Due"),
}
CONDITION_OUTCOME: Mapping[str, Label] = {
    "conflict": ("不符合规划条件", "Breaches the plan"),
    "pass": ("符合规划条件", "Within the plan"),
    "listed": ("适用（未申报指标）", "Applies (nothing declared)"),
}
INDICATOR: Mapping[str, Label] = {
    "land_use": ("用地性质", "Land use"),
    "far": ("容积率", "Floor area ratio"),
    "building_density": ("建筑密度", "Building density"),
    "green_ratio": ("绿地率", "Green ratio"),
    "height_m": ("建筑高度", "Building height"),
}
BOUND: Mapping[str, Label] = {"max": ("不大于", "at most"), "min": ("不小于", "at least"),
                              "compatible": ("兼容", "compatible")}
FINDING_OK: Mapping[str, Label] = {"True": ("符合", "within"), "False": ("超出", "breach")}
SECTION: Mapping[str, Label] = {
    "controls": ("三条控制线", "Control lines"),
    "zones": ("三区空间", "Zones"),
    "overlays": ("叠加管控（地质灾害等）", "Overlays (geohazard and others)"),
    "other": ("其他", "Other"),
}
