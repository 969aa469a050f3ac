"""Write viewer/report_templates/report.docx and checklist.docx, the Word 审查报告 and 用地清单 templates
(docxtpl tags in python-docx).

An office may restyle the .docx in Word (fonts, logo, header, page layout) as long as the {{ }} and
{% %} tags stay; this script only makes the first version. Run: python scripts/make_report_template.py
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

OUT = Path(__file__).resolve().parents[1] / "viewer" / "report_templates" / "report.docx"


def cjk_style(doc: Document) -> None:
    """Song/Hei for Chinese (Word on the office PCs has them), a sans font for Latin text."""
    normal = doc.styles["Normal"]
    normal.font.name = "Arial"
    normal.font.size = Pt(10.5)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")
    for name in ("Title", "Heading 1", "Heading 2"):
        style = doc.styles[name]
        style.font.name = "Arial"
        style.element.rPr.rFonts.set(qn("w:eastAsia"), "黑体")


def key_value_table(doc: Document, rows: list[tuple[str, str]]) -> None:
    table = doc.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for key, value in rows:
        cells = table.add_row().cells
        cells[0].text = key
        cells[1].text = value
        cells[0].width = Cm(4.5)


def loop_table(doc: Document, headers: list[str], loop: str, cells: list[str],
               widths_cm: list[float]) -> None:
    """A table whose body rows come from a docxtpl ``{%tr for %}`` loop."""
    table = doc.add_table(rows=1, cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for cell, text in zip(table.rows[0].cells, headers, strict=True):
        cell.text = text
    table.add_row().cells[0].text = "{%tr for " + loop + " %}"
    for cell, text in zip(table.add_row().cells, cells, strict=True):
        cell.text = text
    table.add_row().cells[0].text = "{%tr endfor %}"
    for column, width in zip(table.columns, widths_cm, strict=True):
        column.width = Cm(width)  # the grid LibreOffice and WPS read; Word reads the cells
        for cell in column.cells:
            cell.width = Cm(width)


def planning_sections(doc: Document, conditions_no: str, assessments_no: str) -> None:
    """规划条件 (one row per indicator of each detailed-plan parcel) and 区域评估 (per assessment type);
    the result cell is a docxtpl RichText in colour (green within, red breach)."""
    doc.add_heading(f"{conditions_no}、规划条件 Planning conditions (detailed plan)", level=1)
    doc.add_paragraph("申报指标 Declared plan：{{ declared_text }}")
    doc.add_paragraph("{%p if not condition_rows %}")
    doc.add_paragraph("地块不在控规地块范围内，或蓝图未含控制性详细规划 "
                      "No detailed-plan parcel under the parcels.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p if condition_rows %}")
    loop_table(
        doc,
        ["地块 Parcel", "控规地块 Plan parcel", "用地性质 Land use", "指标 Indicator", "申报值 Declared",
         "规划限值 Limit", "余量 Margin", "结论 Result"],
        "c in condition_rows",
        ["{{ c.parcel_id }}", "{{ c.layer }}:{{ c.feature_id }} {{ c.outcome_text }}",
         "{{ c.land_use_text }}",
         "{{ c.indicator_text }}", "{{ c.declared_text }}", "{{ c.limit_text }}", "{{ c.margin_text }}",
         "{{r c.ok_rich }}"],
        [1.4, 2.8, 2.6, 1.6, 1.6, 3.2, 1.4, 1.4],
    )
    doc.add_paragraph("{%p endif %}")

    doc.add_heading(f"{assessments_no}、区域评估 Regional assessments", level=1)
    doc.add_paragraph("{%p if not assessments %}")
    doc.add_paragraph("蓝图未含区域评估成果 The blueprint holds no regional assessment.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p if assessments %}")
    loop_table(
        doc,
        ["地块 Parcel", "评估事项 Assessment", "状态 Status", "已覆盖 m²", "未覆盖 m²", "成果文件 Documents"],
        "a in assessments",
        ["{{ a.parcel_id }}", "{{ a.name_zh }}", "{{r a.status_rich }}", "{{ num(a.covered_m2) }}",
         "{{ num(a.uncovered_m2) }}", "{{ a.documents_text }}"],
        [1.4, 3.2, 3.0, 1.8, 1.8, 4.8],
    )
    doc.add_paragraph("{%p endif %}")


def titled_document(title_zh: str, subtitle_en: str) -> Document:
    """2-cm margins, the CJK style and the centred Chinese title with its English line under it."""
    doc = Document()
    for section in doc.sections:
        section.left_margin = section.right_margin = Cm(2)
        section.top_margin = section.bottom_margin = Cm(2)
    cjk_style(doc)
    doc.add_heading(title_zh, level=0).alignment = WD_ALIGN_PARAGRAPH.CENTER
    doc.add_paragraph(subtitle_en).alignment = WD_ALIGN_PARAGRAPH.CENTER
    return doc


def build() -> Document:
    doc = titled_document("“一张蓝图”建设项目合规审查报告",
                          "One Blueprint — compliance review report of a construction project")

    doc.add_heading("一、基本信息 Basic information", level=1)
    key_value_table(doc, [
        ("检查编号 Check id", "{{ check.check_id }}"),
        ("项目代码 Project code", "{{ project.code or '库外检查 outside the pool' }}"),
        ("项目名称 Project name", "{{ project.name or '' }}"),
        ("建设单位 Applicant", "{{ project.applicant or '' }}"),
        ("行政区 District", "{{ project.district or '' }}"),
        ("项目类型 Project type", "{{ type_label }}"),
        ("审查结论 Verdict", "{{ verdict_text }}"),
        ("蓝图版本 Blueprint version", "{{ check.blueprint_version }}"),
        ("蓝图校验和 Blueprint checksum", "{{ blueprint_checksum }}"),
        ("规则版本 Rules version", "{{ rules_version }}"),
        ("规则文件 Rules file", "{{ rules_file }}  sha256 {{ rules_sha256 }}"),
        ("容差 Tolerance", "{{ tolerance_text }}"),
        ("坐标系 CRS", "{{ crs_label }}"),
        ("面积计算方法 Area method", "{{ area_method[0] }}"),
        ("检测时间 Screened", "{{ checked_at }}"),
        ("生成时间 Generated", "{{ generated_at }}"),
    ])

    doc.add_heading("二、位置图 Location map", level=1)
    doc.add_paragraph("{{ map_image }}").alignment = WD_ALIGN_PARAGRAPH.CENTER

    doc.add_heading("三、重叠分析 Overlaps per parcel and control layer", level=1)
    loop_table(
        doc,
        ["地块 Parcel", "管控图层 Layer", "规则 Rule", "重叠面积（平面）m²", "重叠面积（椭球）m²",
         "占比 Ratio",
         "法规依据 Regulation"],
        "r in rows",
        ["{{ r.parcel_id }} {{ r.parcel_verdict }}", "{{ r.kind_zh }}", "{{ r.rule }}",
         "{{ num(r.overlap_area_m2) }}", "{{ num(r.overlap_ellipsoidal_area_m2) }}", "{{ r.ratio_text }}",
         "{{ r.regulation_zh }} {{ r.citation_zh }}"],
        [1.8, 2.0, 1.4, 2.4, 2.4, 1.6, 5.4],
    )

    planning_sections(doc, "四", "五")

    doc.add_heading("六、申请人须提供或取得 What the applicant must provide or obtain", level=1)
    doc.add_paragraph("{%p if not requirements %}")
    doc.add_paragraph("无有条件允许的占用，无需另行提供材料 "
                      "No conditional overlap: nothing further to provide.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p if requirements %}")
    loop_table(
        doc,
        ["序号 No.", "材料或审批 Document or approval", "依据 Basis", "涉及地块 Parcels", "涉及图层 Layers"],
        "q in requirements",
        ["{{ q.no }}", "{{ q.zh }}", "{{ q.basis }}", "{{ q.parcels_text }}", "{{ q.kinds_text }}"],
        [1.4, 7.0, 4.2, 2.2, 2.2],
    )
    doc.add_paragraph("{%p endif %}")

    doc.add_heading("七、审查说明 Explanations", level=1)
    doc.add_paragraph("{{ check.explanation_zh }}")
    doc.add_paragraph("{%p for p in parcels %}")
    doc.add_paragraph("地块 {{ p.parcel_id }}：{{ p.explanation_zh }}")
    doc.add_paragraph("{%p endfor %}")

    doc.add_heading("八、几何修复 Repairs made to the input", level=1)
    doc.add_paragraph("{%p if not repairs %}")
    doc.add_paragraph("无需修复 No repair was needed.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p for r in repairs %}")
    doc.add_paragraph("地块 {{ r.parcel_id }}：{{ r.problem }} → {{ r.action }} {{ r.detail }}")
    doc.add_paragraph("{%p endfor %}")

    doc.add_heading("九、联合审查意见 Joint-review decisions", level=1)
    doc.add_paragraph("{%p if not reviews %}")
    doc.add_paragraph("暂无联审意见 No decision recorded yet.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p for r in reviews %}")
    doc.add_paragraph("{{ r.decision_label }} — {{ r.decided_by }} {{ r.decided_at }} "
                      "{{ r.conditions_text }} "
                      "{{ r.reasons }}")
    doc.add_paragraph("{%p endfor %}")

    doc.add_heading("十、会议签字 Signatures of the joint-review meeting", level=1)
    key_value_table(doc, [
        ("联审决定 Decision", "□ 同意　□ 有条件同意　□ 不同意"),
        ("发展改革 Development and reform", ""),
        ("自然资源和规划 Natural resources and planning", ""),
        ("生态环境 Ecology and environment", ""),
        ("水务 Water", ""),
        ("住房城乡建设 Housing and construction", ""),
        ("主持人 Chair　　日期 Date", ""),
    ])
    return doc


def build_checklist() -> Document:
    """The 用地清单 template: what the land carries, per parcel, for the developer ("交地即开工")."""
    doc = titled_document("用地清单", "Land checklist — what the blueprint says about the land handed over")

    doc.add_heading("一、基本信息 Basic information", level=1)
    key_value_table(doc, [
        ("项目代码 Project code", "{{ project.code or '库外地块 outside the pool' }}"),
        ("项目名称 Project name", "{{ project.name or '' }}"),
        ("建设单位 Applicant", "{{ project.applicant or '' }}"),
        ("项目类型 Project type", "{{ type_label }}"),
        ("依据的检查 Check", "{{ check_text }}"),
        ("蓝图版本 Blueprint version", "{{ blueprint.version }}"),
        ("蓝图校验和 Blueprint checksum", "{{ blueprint.checksum or '–' }}"),
        ("申报指标 Declared plan", "{{ declared_text }}"),
        ("检测时间 Screened", "{{ checked_at }}"),
        ("生成时间 Generated", "{{ generated_at }}"),
    ])
    doc.add_heading("二、清单摘要 Summary", level=1)
    key_value_table(doc, [
        ("地块数 Parcels", "{{ summary.parcels }}"),
        ("触及控制线 Control lines touched", "{{ summary.controls }}"),
        ("规划条件 Planning conditions",
         "{{ summary.conditions }}（不符合 {{ summary.conditions_breached }}）"),
        ("可复用的区域评估 Reusable assessments", "{{ summary.assessments_reusable }}"),
        ("须开展的评估 Assessments to do", "{{ summary.assessments_to_do }}"),
    ])
    doc.add_heading("三、控制线、分区与叠加图层 Lines, zones and overlays", level=1)
    doc.add_paragraph("{%p if not layer_rows %}")
    doc.add_paragraph("地块未触及任何管控图层 The parcels touch no control layer.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p if layer_rows %}")
    loop_table(
        doc,
        ["地块 Parcel", "类别 Section", "图层 Layer", "规则 Rule", "重叠面积 m²", "来源要素 Source features",
         "图斑 Pieces"],
        "h in layer_rows",
        ["{{ h.parcel_id }}", "{{ h.section_text }}", "{{ h.name_zh }}", "{{ h.rule_text }}",
         "{{ num(h.overlap_m2) }}", "{{ h.sources_text }}", "{{ h.pieces_text }}"],
        [1.4, 2.4, 2.6, 1.4, 2.0, 4.2, 2.0],
    )
    doc.add_paragraph("{%p endif %}")
    planning_sections(doc, "四", "五")
    doc.add_heading("六、说明 Notes", level=1)
    doc.add_paragraph("本清单由“一张蓝图”{{ blueprint.version }} 版自动生成，"
                      "所列面积、限值与状态均取自依据的检查结果；来源要素以“图层:要素编号”标识，可在蓝图中逐一核对。")
    doc.add_paragraph("Generated from blueprint {{ blueprint.version }}; every figure is the check's own. "
                      "Sources are given as layer:feature id.")
    return doc


CHECKLIST_OUT = OUT.parent / "checklist.docx"

if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    build().save(OUT)
    build_checklist().save(CHECKLIST_OUT)
    print(OUT, CHECKLIST_OUT)
