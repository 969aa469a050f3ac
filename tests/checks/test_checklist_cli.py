"""`blueprint checklist` end to end on an embedded database with the hand-made blueprint."""

from __future__ import annotations

import io
import json

import pytest
from docx import Document

from blueprint.checksum import blueprint_checksum
from runtime.settings import Settings
from runtime.stores import open_stores
from tests.checks.conftest import make_blueprint, parcels, rect


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("checklist")
    stores = open_stores(Settings(data_dir=root))
    try:
        draft = make_blueprint(version="v1")
        draft.status = "draft"
        stores.blueprints.save_draft(draft)
        stores.blueprints.publish("v1", by="test")
        root.joinpath("checksum").write_text(blueprint_checksum(stores.blueprints.summary("v1")))
    finally:
        stores.close()
    # A spans red line [50,100], farmland [100,200] and urban [200,250] × [50,150]; B sits in urban only
    parcels(rect(50, 50, 250, 150), rect(210, 10, 260, 60), ids=["A", "B"]).frame.to_file(
        root / "mixed.geojson", driver="GeoJSON"
    )
    return root


def test_checklist_lists_lines_and_zones_with_sources(run, data_dir):
    result = run("checklist", data_dir / "mixed.geojson", "--version", "v1", "--type", "residential")
    assert result.exit_code == 0, result.output
    sheet = json.loads(result.stdout)
    assert sheet["blueprint"] == {"version": "v1", "checksum": (data_dir / "checksum").read_text()}
    assert sheet["stored"] is False and sheet["check_id"] is None
    a = sheet["parcels"][0]
    assert a["parcel_id"] == "A"
    lines = {c["kind"]: c for c in a["controls"]}
    # 50 × 100 m on the red line, 100 × 100 on farmland, 50 × 100 inside the urban boundary
    assert {k: round(v["overlap_m2"]) for k, v in lines.items()} == {
        "ecological_redline": 5000,
        "permanent_farmland": 10000,
        "urban_boundary": 5000,
    }
    assert lines["permanent_farmland"]["sources"] == [
        {"layer": "farmland", "feature_id": "P000002-per", "blueprint_version": "v1"}
    ]
    assert {z["kind"] for z in a["zones"]} == {"ecological_space", "agricultural_space", "urban_space"}
    b = sheet["parcels"][1]
    assert [c["kind"] for c in b["controls"]] == ["urban_boundary"] and b["overlays"] == []
    # nothing stored: the database still holds no check
    stores = open_stores(Settings(data_dir=data_dir))
    try:
        with stores.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM checks").scalar() == 0
    finally:
        stores.close()


def test_checklist_writes_word(run, data_dir, tmp_path):
    out = tmp_path / "清单.docx"
    result = run("checklist", data_dir / "mixed.geojson", "-t", "industrial", "--out", out)
    assert result.exit_code == 0, result.output
    doc = Document(io.BytesIO(out.read_bytes()))
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    assert "生态保护红线" in cells and "redline:P000001-eco" in cells and "v1" in cells
    assert json.loads(result.stdout)["parcels"][0]["parcel_id"] == "A"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--declare", "far=abc"), "invalid_declared", "declared.far"),
        (("--declare", "colour=red"), "invalid_declared", "colour"),
        (("--declare", "land_use=9999"), "invalid_declared", "land_use"),
        (("--declare", "far"), "invalid_declared", "NAME=VALUE"),
        (("--check-date", "tomorrow"), "check_error", "YYYY-MM-DD"),
        (("--out", "x.txt"), "check_error", ".docx or .pdf"),
        (("--version", "v9"), "blueprint_not_found", "v9"),
    ],
)
def test_checklist_bad_input_exits_3_naming_it(run, data_dir, args, code, words):
    result = run("checklist", data_dir / "mixed.geojson", *args)
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == code and words in error["detail"]
