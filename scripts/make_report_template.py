"""Write viewer/report_templates/report.docx, the Word 审查报告 template (docxtpl tags in python-docx).

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


def build() -> Document:
    doc = Document()
    for section in doc.sections:
        section.left_margin = section.right_margin = Cm(2)
        section.top_margin = section.bottom_margin = Cm(2)
    cjk_style(doc)
    title = doc.add_heading("“一张蓝图”建设项目合规审查报告", level=0)
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    sub = doc.add_paragraph("One Blueprint — compliance review report of a construction project")
    sub.alignment = WD_ALIGN_PARAGRAPH.CENTER

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

    doc.add_heading("四、申请人须提供或取得 What the applicant must provide or obtain", level=1)
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

    doc.add_heading("五、审查说明 Explanations", level=1)
    doc.add_paragraph("{{ check.explanation_zh }}")
    doc.add_paragraph("{%p for p in parcels %}")
    doc.add_paragraph("地块 {{ p.parcel_id }}：{{ p.explanation_zh }}")
    doc.add_paragraph("{%p endfor %}")

    doc.add_heading("六、几何修复 Repairs made to the input", level=1)
    doc.add_paragraph("{%p if not repairs %}")
    doc.add_paragraph("无需修复 No repair was needed.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p for r in repairs %}")
    doc.add_paragraph("地块 {{ r.parcel_id }}：{{ r.problem }} → {{ r.action }} {{ r.detail }}")
    doc.add_paragraph("{%p endfor %}")

    doc.add_heading("七、联合审查意见 Joint-review decisions", level=1)
    doc.add_paragraph("{%p if not reviews %}")
    doc.add_paragraph("暂无联审意见 No decision recorded yet.")
    doc.add_paragraph("{%p endif %}")
    doc.add_paragraph("{%p for r in reviews %}")
    doc.add_paragraph("{{ r.decision_label }} — {{ r.decided_by }} {{ r.decided_at }} "
                      "{{ r.conditions_text }} "
                      "{{ r.reasons }}")
    doc.add_paragraph("{%p endfor %}")

    doc.add_heading("八、会议签字 Signatures of the joint-review meeting", level=1)
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


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    build().save(OUT)
    print(OUT)
