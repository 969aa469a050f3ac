"""viewer.checklist_doc: the 用地清单 in words for people — HTML, PDF (headless Chromium) and Word."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from viewer import conditions as planning
from viewer import report as report_mod
from viewer import report_office
from viewer.labels import RULE, SECTION, VERDICT, Label, label, zh_en
from viewer.page import render_template

SECTIONS = ("controls", "zones", "overlays", "other")


def _layer_rows(parcels: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per parcel × line, zone or overlay touched, with its source features and pieces."""
    rows = []
    for p in parcels:
        for section in SECTIONS:
            for h in p.get(section) or []:
                rows.append(
                    {
                        **h,
                        "parcel_id": str(p.get("parcel_id")),
                        "section": section,
                        "section_text": label(SECTION, section)[0],
                        "rule_text": label(RULE, h.get("rule"))[0],
                        "sources_text": "、".join(
                            f"{s['layer']}:{s['feature_id']}" for s in h.get("sources") or []
                        ),
                        "pieces_text": "、".join(h.get("piece_ids") or []),
                    }
                )
    return rows


def _check_text(checklist: Mapping[str, Any]) -> str:
    if checklist.get("stored"):
        return f"{checklist.get('check_id')}（已存档的检查 stored check）"
    return "即时检测，未存档（项目尚无该版本的检查） screened now, not stored"


def checklist_context(
    checklist: Mapping[str, Any], project_types: Mapping[str, Label] | None = None
) -> dict[str, Any]:
    """Everything the checklist documents show, from ``checks.checklist.build_checklist``."""
    parcels = list(checklist.get("parcels") or [])
    conditions = planning.conditions(parcels)
    project = dict(checklist.get("project") or {})
    return {
        **checklist,
        "project": project,
        "type_label": zh_en(project_types or {}, checklist.get("project_type")),
        "verdict_text": zh_en(VERDICT, checklist.get("verdict")),
        "check_text": _check_text(checklist),
        "declared_text": planning.declared_text(checklist.get("declared")),
        "layer_rows": _layer_rows(parcels),
        "conditions": conditions,
        "condition_rows": planning.finding_rows(conditions),
        "assessments": planning.assessments(parcels),
        "checked_at": report_mod.time_text(checklist.get("checked_at")),
        "generated_at": report_mod.time_text(datetime.now(UTC).isoformat()),
        "num": report_mod.stored_number,
    }


def checklist_html(context: Mapping[str, Any]) -> str:
    """The printable checklist page (self-contained, nothing fetched)."""
    return render_template("checklist.html", **context)


def checklist_pdf(context: Mapping[str, Any]) -> bytes:
    """The checklist as A4 PDF, printed like the review report; ``ReportUnavailable`` without Chromium."""
    return report_mod.html_to_pdf(checklist_html(context))


def checklist_docx(context: dict[str, Any]) -> bytes:
    return report_office.checklist_docx(context)
