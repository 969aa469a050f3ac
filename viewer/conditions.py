"""viewer.conditions: a check's planning conditions (规划条件) and regional assessments (区域评估) as rows
in words — shared by the review reports (HTML, PDF, Word, Excel) and the 用地清单."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from layers.land_use import load_land_use_codes
from viewer.labels import ASSESSMENT_STATUS, BOUND, CONDITION_OUTCOME, FINDING_OK, INDICATOR, label

# limit key of a condition → (indicator, bound); the order the limits are listed in
LIMITS: tuple[tuple[str, str, str], ...] = (
    ("far_max", "far", "max"),
    ("far_min", "far", "min"),
    ("building_density_max", "building_density", "max"),
    ("green_ratio_min", "green_ratio", "min"),
    ("height_max_m", "height_m", "max"),
)
UNIT = {"far": "", "building_density": "%", "green_ratio": "%", "height_m": " m"}
NONE = "–"


def value_text(indicator: str, value: Any) -> str:
    """``2.5``, ``30%``, ``60 m``; the number as stored (no rounding), a dash for none."""
    if value is None or value == "":
        return NONE
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value}{UNIT.get(indicator, '')}"


def land_use_text(land_use: Mapping[str, Any] | None) -> str:
    """``城镇住宅用地（0701）``: the name first, the national code beside it."""
    if not land_use:
        return NONE
    name, code = land_use.get("name_zh") or "", land_use.get("code") or ""
    return f"{name}（{code}）" if name and code else str(name or code)


def code_text(code: Any) -> str:
    """A land-use code with its name from the national list: ``城镇住宅用地（0701）``."""
    if code is None or code == "":
        return NONE
    found = load_land_use_codes().get(str(code))
    return f"{found.name_zh}（{code}）" if found else str(code)


def limits_text(limits: Mapping[str, Any] | None) -> str:
    """``容积率不大于 2.5；绿地率不小于 35%``; limits that are null (no limit) are left out."""
    parts = []
    for key, indicator, bound in LIMITS:
        value = (limits or {}).get(key)
        if value is not None:
            parts.append(
                f"{label(INDICATOR, indicator)[0]}{label(BOUND, bound)[0]} {value_text(indicator, value)}"
            )
    return "；".join(parts) or "无指标限制"


def _finding(f: Mapping[str, Any]) -> dict[str, Any]:
    indicator = str(f.get("indicator") or "")
    is_use = indicator == "land_use"
    declared, limit = f.get("declared"), f.get("limit")
    ok = f.get("ok")
    return {
        "indicator": indicator,
        "indicator_text": label(INDICATOR, indicator)[0],
        "declared_text": code_text(declared) if is_use else value_text(indicator, declared),
        "limit_text": (
            code_text(limit)
            if is_use
            else f"{label(BOUND, f.get('bound'))[0]} {value_text(indicator, limit)}"
        ),
        "margin_text": NONE if is_use or f.get("margin") is None else value_text(indicator, f.get("margin")),
        "ok": ok,
        "ok_text": label(FINDING_OK, str(ok))[0] if ok is not None else NONE,
        "explanation_zh": f.get("explanation_zh") or "",
        "explanation_en": f.get("explanation_en") or "",
    }


def condition_view(parcel_id: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    """One plan parcel's condition for the page: land use, limits, findings, outcome, in words."""
    outcome = str(c.get("outcome") or "")
    return {
        "parcel_id": str(parcel_id),
        "layer": c.get("layer") or "",
        "feature_id": str(c.get("feature_id") or ""),
        "overlap_m2": c.get("overlap_m2"),
        "land_use_text": land_use_text(c.get("land_use")),
        "limits_text": limits_text(c.get("limits")),
        "outcome": outcome,
        "outcome_text": label(CONDITION_OUTCOME, outcome)[0],
        "findings": [_finding(f) for f in c.get("findings") or []],
    }


def conditions(parcels: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every parcel's conditions, parcel by parcel (a result without conditions gives none)."""
    return [condition_view(p.get("parcel_id"), c) for p in parcels for c in p.get("conditions") or []]


def finding_rows(views: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for Word and Excel tables: one per finding, or one per condition with none declared."""
    rows = []
    for v in views:
        base = {
            k: v[k]
            for k in (
                "parcel_id",
                "layer",
                "feature_id",
                "overlap_m2",
                "land_use_text",
                "limits_text",
                "outcome_text",
            )
        }
        for f in v["findings"] or [None]:
            rows.append(
                {
                    **base,
                    **(
                        f
                        or {
                            "indicator_text": "适用指标",
                            "declared_text": "未申报",
                            "limit_text": v["limits_text"],
                            "margin_text": NONE,
                            "ok": None,
                            "ok_text": NONE,
                            "explanation_zh": "",
                        }
                    ),
                }
            )
    return rows


def documents_text(documents: Iterable[Mapping[str, Any]]) -> str:
    """``铜自然资〔2025〕12号（2025-03-01 批准，有效期至 2028-02-28）`` for each document, expired marked."""
    out = []
    for d in documents:
        state = "" if d.get("valid", True) else "，已过期"
        out.append(
            f"{d.get('number') or '无文号'}（{d.get('approved') or '–'} 批准，有效期至 "
            f"{d.get('valid_until') or '–'}{state}；{d.get('layer') or ''}:{d.get('feature_id') or ''}）"
        )
    return "；".join(out)


def assessments(parcels: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per parcel × assessment type, with its status in words."""
    rows = []
    for p in parcels:
        for a in p.get("assessments") or []:
            status = str(a.get("status") or "")
            rows.append(
                {
                    "parcel_id": str(p.get("parcel_id")),
                    "type": a.get("type"),
                    "name_zh": a.get("name_zh") or str(a.get("type")),
                    "name_en": a.get("name_en") or "",
                    "status": status,
                    "status_text": label(ASSESSMENT_STATUS, status)[0],
                    "status_en": label(ASSESSMENT_STATUS, status)[1],
                    "covered_m2": a.get("covered_m2"),
                    "uncovered_m2": a.get("uncovered_m2"),
                    "documents_text": documents_text(a.get("documents") or []) or "无 none",
                    "explanation_zh": a.get("explanation_zh") or "",
                }
            )
    return rows


def declared_text(declared: Mapping[str, Any] | None) -> str:
    """``用地性质 0701；容积率 2.8；绿地率 35%``: the project's declared plan, or that none was declared."""
    parts = []
    for indicator in ("land_use", "far", "building_density", "green_ratio", "height_m"):
        value = (declared or {}).get(indicator)
        if value is not None and value != "":
            shown = code_text(value) if indicator == "land_use" else value_text(indicator, value)
            parts.append(f"{label(INDICATOR, indicator)[0]} {shown}")
    return "；".join(parts) or "未申报（仅列出适用的规划条件） none declared"
