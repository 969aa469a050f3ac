"""viewer.labels: Chinese-first names for every code a person sees (verdicts, rules, statuses, decisions)."""

from __future__ import annotations

from collections.abc import Mapping

Label = tuple[str, str]

VERDICT: Mapping[str, Label] = {"pass": ("通过", "Pass"), "review": ("需审查", "Review"),
                                "conflict": ("冲突", "Conflict")}
RULE: Mapping[str, Label] = {"forbidden": ("禁止", "forbidden"), "conditional": ("有条件", "conditional"),
                             "allowed": ("允许", "allowed")}
STATUS: Mapping[str, Label] = {
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
REPAIR_ACTION_ZH = "已自动修复 repaired"


def label(table: Mapping[str, Label], code: object) -> Label:
    """The (zh, en) label of ``code``; an unknown code is shown as it is rather than hidden."""
    text = "" if code is None else str(code)
    return table.get(text, (text, text))


def zh_en(table: Mapping[str, Label], code: object) -> str:
    """``"通过 Pass"``: the one-string form for reports and tables."""
    zh, en = label(table, code)
    return zh if zh == en else f"{zh} {en}"
