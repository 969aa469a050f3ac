"""The 用地清单 and the report sections in words: HTML, Word (read back) and Excel (read back)."""

from __future__ import annotations

import io

from docx import Document

from checks.checklist import build_checklist
from layers.catalogue import load_catalogue
from tests.checklist_sample import sample_result
from viewer import checklist_doc
from viewer import conditions as planning


def context() -> dict:
    sheet = build_checklist(
        sample_result(),
        catalogue=load_catalogue(),
        blueprint_checksum="c0ffee",
        project={"code": "2026-340705-50-03-000001", "name": "滨江小区"},
    )
    return checklist_doc.checklist_context(sheet, {"residential": ("居住", "Residential")})


def test_limits_and_findings_in_words() -> None:
    limits = {
        "far_max": 2.5,
        "far_min": None,
        "building_density_max": 30.0,
        "green_ratio_min": 35.0,
        "height_max_m": 60.0,
    }
    assert (
        planning.limits_text(limits)
        == "容积率不大于 2.5；建筑密度不大于 30%；绿地率不小于 35%；建筑高度不大于 60 m"
    )
    assert planning.limits_text({"far_max": None}) == "无指标限制"
    rows = context()["condition_rows"]
    far = next(r for r in rows if r["feature_id"] == "K-03" and r["indicator"] == "far")
    assert (far["declared_text"], far["limit_text"], far["ok_text"], far["ok"]) == (
        "2.8",
        "不大于 2.5",
        "超出",
        False,
    )
    assert far["land_use_text"] == "城镇住宅用地（0701）" and far["outcome_text"] == "不符合规划条件"
    assert (
        planning.declared_text({"land_use": "0701", "far": 2.8, "green_ratio": 36.0})
        == "用地性质 城镇住宅用地（0701）；容积率 2.8；绿地率 36%"
    )


def test_checklist_html_has_sections_and_no_raw_status_codes() -> None:
    html = checklist_doc.checklist_html(context())
    assert (
        "可复用（免于单独评估）" in html
        and "部分覆盖（须补充评估）" in html
        and "已过期（须重新评估）" in html
    )
    assert "农田:F-9" in html and "c0ffee" in html and "2026-340705-50-03-000001" in html
    assert 'class="ok-false">超出' in html
    for code in (">exempt<", ">partial<", ">due<", ">conflict<", ">far<"):
        assert code not in html


def test_checklist_docx_reads_back() -> None:
    doc = Document(io.BytesIO(checklist_doc.checklist_docx(context())))
    text = "\n".join(p.text for p in doc.paragraphs)
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    assert "用地清单" in text and "四、规划条件" in text and "五、区域评估" in text
    assert "c0ffee" in cells and "滨江小区" in cells
    assert "可复用（免于单独评估）" in cells and "须单独评估" in cells
    assert "超出" in cells and "不大于 2.5" in cells
    assert any("农田:F-9" in c for c in cells)
    # the breach is red in Word
    breach = next(
        r
        for t in doc.tables
        for row in t.rows
        for c in row.cells
        for p in c.paragraphs
        for r in p.runs
        if r.text == "超出"
    )
    assert str(breach.font.color.rgb) == "D7191C"
