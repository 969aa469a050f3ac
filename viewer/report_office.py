"""viewer.report_office: the 审查报告 as Word (docxtpl on an editable template) and Excel (XlsxWriter)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from viewer.labels import VERDICT, zh_en

DOCX_TEMPLATE = Path(__file__).resolve().parent / "report_templates" / "report.docx"
CHECKLIST_TEMPLATE = DOCX_TEMPLATE.parent / "checklist.docx"
# result colours in Word: within / breach, reusable / to do (as on the HTML report)
GOOD, BAD, WARN, PLAIN = "1A7A33", "D7191C", "B35900", "333333"
STATUS_COLOUR = {"exempt": GOOD, "partial": WARN, "expired": WARN, "due": BAD}
MAP_WIDTH_MM = 150

XLSX_COLUMNS: list[tuple[str, str, str]] = [
    # (header, row key, kind of cell)
    ("地块编号 Parcel", "parcel_id", "text"),
    ("地块名称 Name", "parcel_name", "text"),
    ("地块结论 Parcel verdict", "parcel_verdict", "text"),
    ("地块面积（平面）m² Parcel area plane", "parcel_area_m2", "area"),
    ("地块面积（椭球）m² Parcel area ellipsoidal", "parcel_ellipsoidal_area_m2", "area"),
    ("管控图层 Control layer", "kind_zh", "text"),
    ("规则 Rule", "rule", "text"),
    ("重叠面积（平面）m² Overlap plane", "overlap_area_m2", "area"),
    ("重叠面积（椭球）m² Overlap ellipsoidal", "overlap_ellipsoidal_area_m2", "area"),
    ("占地块比例 Ratio", "overlap_ratio", "ratio"),
    ("低于容差 Below tolerance", "below_tolerance", "text"),
    ("法规依据 Regulation", "regulation_zh", "text"),
    ("文号及条款 Citation", "citation_zh", "text"),
    ("须提供或取得 Requirements", "requirements_zh", "text"),
]


def _ratio_text(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, int | float) else "–"


def _conditions_text(conditions: Any) -> str:
    if isinstance(conditions, list):
        return "；".join(str(c) for c in conditions)
    return str(conditions or "")


def docx_report(context: dict[str, Any], template: Path = DOCX_TEMPLATE) -> bytes:
    """The Word report from ``viewer.report.report_context``; the numbers are the stored ones."""
    from docx.shared import Mm
    from docxtpl import DocxTemplate, InlineImage

    doc = DocxTemplate(str(template))
    png = context.get("map_png_bytes")
    values = {
        **context,
        "verdict_text": zh_en(VERDICT, context["check"].get("verdict")),
        "rows": [{**r, "ratio_text": _ratio_text(r["overlap_ratio"])} for r in context["rows"]],
        "reviews": [{**r, "conditions_text": _conditions_text(r.get("conditions"))}
                    for r in context["reviews"]],
        "map_image": InlineImage(doc, io.BytesIO(png), width=Mm(MAP_WIDTH_MM)) if png else "无几何",
        "project": context.get("project") or {},
        **planning_values(context),
    }
    return _render(doc, values)


def planning_values(context: dict[str, Any]) -> dict[str, Any]:
    """规划条件 rows with the result in colour, 区域评估 rows with the status in colour (docxtpl RichText)."""
    from docxtpl import RichText

    def ok_rich(ok: Any, text: str) -> Any:
        colour = PLAIN if ok is None else GOOD if ok else BAD
        return RichText(text, color=colour, bold=ok is False)

    return {
        "condition_rows": [{**r, "ok_rich": ok_rich(r.get("ok"), r["ok_text"])}
                           for r in context.get("condition_rows") or []],
        "assessments": [{**a, "status_rich": RichText(a["status_text"],
                                                       color=STATUS_COLOUR.get(a["status"], PLAIN),
                                                       bold=a["status"] == "exempt")}
                        for a in context.get("assessments") or []],
    }


def _render(doc: Any, values: dict[str, Any]) -> bytes:
    doc.render(values, autoescape=True)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def checklist_docx(context: dict[str, Any], template: Path = CHECKLIST_TEMPLATE) -> bytes:
    """The 用地清单 as Word, from ``viewer.checklist_doc.checklist_context``."""
    from docxtpl import DocxTemplate

    doc = DocxTemplate(str(template))
    return _render(doc, {**context, "project": context.get("project") or {}, **planning_values(context)})


def xlsx_report(context: dict[str, Any]) -> bytes:
    """A sheet of rows (parcel × control layer), every number a number; a second says what was checked."""
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    head = book.add_format({"bold": True, "bg_color": "#EEEEEE", "text_wrap": True, "valign": "top",
                            "border": 1})
    area = book.add_format({"num_format": "0.0000"})
    ratio = book.add_format({"num_format": "0.00%"})
    sheet = book.add_worksheet("重叠分析")
    for col, (title, _key, kind) in enumerate(XLSX_COLUMNS):
        sheet.write_string(0, col, title, head)
        sheet.set_column(col, col, 40 if kind == "text" and col >= len(XLSX_COLUMNS) - 3 else 16)
    for row_no, row in enumerate(context["rows"], start=1):
        for col, (_title, key, kind) in enumerate(XLSX_COLUMNS):
            value = row.get(key)
            if kind in ("area", "ratio") and isinstance(value, int | float):
                sheet.write_number(row_no, col, float(value), area if kind == "area" else ratio)
            elif kind == "text":
                sheet.write_string(row_no, col, str(value or ""))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(context["rows"]), 1), len(XLSX_COLUMNS) - 1)
    _about_sheet(book.add_worksheet("检查信息"), context, head)
    _requirements_sheet(book.add_worksheet("申请要件"), context, head)
    _planning_sheets(book, context, head, area)
    book.close()
    return out.getvalue()


def _about_sheet(sheet: Any, context: dict[str, Any], head: Any) -> None:
    check, project = context["check"], context.get("project") or {}
    rows = [
        ("检查编号 Check id", check.get("check_id")),
        ("项目代码 Project code", project.get("code", "")),
        ("项目名称 Project name", project.get("name", "")),
        ("项目类型 Project type", context["type_label"]),
        ("审查结论 Verdict", zh_en(VERDICT, check.get("verdict"))),
        ("蓝图版本 Blueprint version", check.get("blueprint_version")),
        ("蓝图校验和 Blueprint checksum", context["blueprint_checksum"]),
        ("规则版本 Rules version", context["rules_version"]),
        ("规则文件 Rules file", f"{context['rules_file']} sha256 {context['rules_sha256']}"),
        ("容差 Tolerance", context["tolerance_text"]),
        ("坐标系 CRS", context["crs_label"]),
        ("面积计算方法 Area method", context["area_method"][0]),
        ("审查说明 Explanation", check.get("explanation_zh", "")),
        ("检测时间 Screened", context["checked_at"]),
        ("生成时间 Generated", context["generated_at"]),
    ]
    sheet.set_column(0, 0, 28)
    sheet.set_column(1, 1, 90)
    for i, (key, value) in enumerate(rows):
        sheet.write_string(i, 0, key, head)
        sheet.write_string(i, 1, "" if value is None else str(value))


def _requirements_sheet(sheet: Any, context: dict[str, Any], head: Any) -> None:
    """What the applicant must provide or obtain, one row each, with the parcels and layers asking for it."""
    titles = ["序号 No.", "材料或审批 Document or approval", "English", "依据 Basis", "涉及地块 Parcels",
              "涉及图层 Layers"]
    for col, (title, width) in enumerate(zip(titles, (8, 60, 60, 36, 16, 24), strict=True)):
        sheet.write_string(0, col, title, head)
        sheet.set_column(col, col, width)
    for row_no, r in enumerate(context["requirements"], start=1):
        sheet.write_number(row_no, 0, r["no"])
        for col, key in enumerate(("zh", "en", "basis", "parcels_text", "kinds_text"), start=1):
            sheet.write_string(row_no, col, str(r.get(key) or ""))


CONDITION_COLUMNS = [
    ("地块 Parcel", "parcel_id"), ("图层 Layer", "layer"), ("控规地块 Plan parcel", "feature_id"),
    ("重叠面积 m² Overlap", "overlap_m2"), ("用地性质 Land use", "land_use_text"),
    ("指标 Indicator", "indicator_text"), ("申报值 Declared", "declared_text"),
    ("规划限值 Limit", "limit_text"), ("余量 Margin", "margin_text"), ("结论 Result", "ok_text"),
    ("地块结论 Outcome", "outcome_text"),
    ("说明 Explanation", "explanation_zh"),
]
ASSESSMENT_COLUMNS = [
    ("地块 Parcel", "parcel_id"), ("评估事项 Assessment", "name_zh"), ("状态 Status", "status_text"),
    ("已覆盖 m² Covered", "covered_m2"), ("未覆盖 m² Uncovered", "uncovered_m2"),
    ("成果文件 Documents", "documents_text"), ("说明 Explanation", "explanation_zh"),
]


def _planning_sheets(book: Any, context: dict[str, Any], head: Any, area: Any) -> None:
    """规划条件 (one row per indicator) and 区域评估 (one row per parcel × type); areas as numbers."""
    red = book.add_format({"font_color": "#D7191C", "bold": True})
    green = book.add_format({"font_color": "#1A7A33"})
    for name, columns, rows in (("规划条件", CONDITION_COLUMNS, context.get("condition_rows") or []),
                                ("区域评估", ASSESSMENT_COLUMNS, context.get("assessments") or [])):
        sheet = book.add_worksheet(name)
        for col, (title, _key) in enumerate(columns):
            sheet.write_string(0, col, title, head)
            sheet.set_column(col, col, 40 if _key in ("explanation_zh", "documents_text") else 16)
        for row_no, row in enumerate(rows, start=1):
            bad = row.get("ok") is False or row.get("status") in ("due", "expired", "partial")
            good = row.get("ok") is True or row.get("status") == "exempt"
            for col, (_title, key) in enumerate(columns):
                value = row.get(key)
                if key.endswith("_m2") and isinstance(value, int | float):
                    sheet.write_number(row_no, col, float(value), area)
                elif key in ("ok_text", "status_text"):
                    sheet.write_string(row_no, col, str(value or ""), red if bad else green if good else None)
                else:
                    sheet.write_string(row_no, col, "" if value is None else str(value))
