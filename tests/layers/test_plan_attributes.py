"""控规地块 and 区域评估 attributes at import: codes checked, indicators reported per feature, --field."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box
from typer.testing import CliRunner

from cli.main import build_app
from layers.errors import FieldMappingError, InvalidAttributeError, UnknownLandUseError
from layers.ingest import read_layer
from layers.land_use import load_land_use_codes
from layers.stream import open_layer
from tests.geoms import X0, Y0

WORK = 4548


def squares(n: int) -> list:
    return [box(X0 + 100 * i, Y0, X0 + 100 * i + 100, Y0 + 100) for i in range(n)]


def write(tmp_path: Path, columns: dict, name: str = "kg.gpkg") -> Path:
    n = len(next(iter(columns.values())))
    path = tmp_path / name
    gpd.GeoDataFrame(
        {"DKBH": [f"KG-{i + 1}" for i in range(n)], **columns}, geometry=squares(n), crs=WORK
    ).to_file(path)
    return path


def read(path: Path, catalogue, kind: str = "detailed_plan", **kw):
    return read_layer(path, kind, work_crs=gpd.GeoSeries([], crs=WORK).crs, catalogue=catalogue, **kw)


def test_land_use_code_list_has_the_classes():
    codes = load_land_use_codes()
    assert all(codes.get(f"{i:02d}") is not None for i in range(1, 25))
    expected = {
        "0701": "城镇住宅用地",
        "0801": "机关团体用地",
        "0901": "商业用地",
        "1001": "工业用地",
        "1101": "物流仓储用地",
        "1207": "城镇道路用地",
        "1310": "消防用地",
        "1401": "公园绿地",
        "1403": "广场用地",
        "0806": "医疗卫生用地",
        "1102": "储备库用地",
    }
    assert {c: codes.get(c).name_zh for c in expected} == expected
    for first, count in {"07": 4, "08": 7, "09": 4, "10": 3, "11": 2, "12": 9, "13": 13, "14": 3}.items():
        assert len([c for c in codes.codes if len(c) == 4 and c.startswith(first)]) == count, first


def test_indicators_read_and_problems_reported_per_feature(tmp_path, catalogue):
    path = write(
        tmp_path,
        {
            "YDDM": ["0701", "1001", "0901"],
            "RJL": ["2.5", "高", None],
            "RJLXX": [1.0, None, None],
            "JZMD": [30.0, 120.0, 40.0],
            "LDL": [35.0, 20.0, 25.0],
            "JZXG": [60.0, 24.0, None],
        },
    )
    plan = read(path, catalogue)
    frame = plan.frame.set_index("feature_id")
    assert frame.loc["KG-1", "far_max"] == 2.5 and frame.loc["KG-1", "far_min"] == 1.0
    assert frame.loc["KG-2", "land_use"] == "1001"
    problems = sorted((r.feature_id, r.problem, r.action) for r in plan.repairs)
    assert problems == [
        ("KG-2", "indicator_not_numeric", "no limit"),  # RJL 高
        ("KG-2", "indicator_out_of_range", "no limit"),  # JZMD 120 %
        ("KG-3", "far_max_missing", "no limit"),  # RJL empty
        ("KG-3", "height_max_m_missing", "no limit"),  # JZXG empty
    ]  # RJLXX (optional) empty on KG-2/3: no limit, not reported
    # never silently zero: the unreadable and absent values are null
    assert frame.loc["KG-2", ["far_max", "building_density_max"]].isna().all()
    assert frame.loc["KG-3", ["far_max", "far_min", "height_max_m"]].isna().all()
    assert any("'高' is not a number" in r.detail for r in plan.repairs)


def test_unknown_land_use_code_is_an_import_error_naming_feature_and_code(tmp_path, catalogue):
    path = write(tmp_path, {"YDDM": ["0701", "0799"], "RJL": [2.0, 2.0]})
    with pytest.raises(UnknownLandUseError) as err:
        read(path, catalogue)
    assert "feature KG-2" in str(err.value) and "'0799'" in str(err.value)


def test_numeric_codes_get_their_leading_zero_back(tmp_path, catalogue):
    path = write(tmp_path, {"YDDM": [701, 1001], "RJL": [2.0, 1.0]})
    assert list(read(path, catalogue).frame["land_use"]) == ["0701", "1001"]


def test_field_override_names_the_departments_columns(tmp_path, catalogue):
    path = write(tmp_path, {"用地代码": ["0701"], "容积率": [2.8], "建筑限高": [45.0]})
    with pytest.raises(FieldMappingError) as err:  # the default YDDM is not there
        read(path, catalogue)
    assert "YDDM" in str(err.value) and "--field" in str(err.value)
    plan = read(path, catalogue, fields={"YDDM": "用地代码", "RJL": "容积率", "height_max_m": "建筑限高"})
    row = plan.frame.iloc[0]
    assert (row["land_use"], row["far_max"], row["height_max_m"]) == ("0701", 2.8, 45.0)
    assert any("JZMD" in note for note in plan.notes)  # absent column: one note, no limit for all
    with pytest.raises(FieldMappingError, match="no field 'XYZ'"):
        read(path, catalogue, fields={"XYZ": "用地代码"})
    with pytest.raises(FieldMappingError, match="no column '容积率2'"):
        read(path, catalogue, fields={"YDDM": "用地代码", "RJL": "容积率2"})


def test_assessments_by_key_or_chinese_name_with_dates(tmp_path, catalogue):
    path = write(
        tmp_path,
        {
            "PGLX": ["geohazard", "洪水影响评价", "soil_water"],
            "WH": ["A1", "A2", None],
            "PZRQ": ["2024/5/1", "2024年5月2日", "20240503"],
            "YXQZ": ["2029-12-31", "not a date", None],
        },
        name="pg.gpkg",
    )
    plan = read(path, catalogue, kind="regional_assessment")
    frame = plan.frame.set_index("feature_id")
    assert list(frame["assessment_type"]) == ["geohazard", "flood_impact", "soil_water"]
    assert list(frame["approved"]) == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert frame.loc["KG-1", "valid_until"] == "2029-12-31"
    assert sorted((r.feature_id, r.problem) for r in plan.repairs) == [
        ("KG-2", "valid_until_invalid"),
        ("KG-3", "document_number_missing"),
        ("KG-3", "valid_until_missing"),
    ]
    bad = write(tmp_path, {"PGLX": ["geohazard", "环评"]}, name="bad.gpkg")
    with pytest.raises(InvalidAttributeError, match="feature KG-2: assessment type '环评'"):
        read(bad, catalogue, kind="regional_assessment")


def test_streamed_import_reports_the_same(tmp_path, catalogue):
    path = write(
        tmp_path, {"YDDM": ["0701", "1001", "0901", "1401", "0801"], "RJL": [1.0, "x", 2.0, None, 1.5]}
    )
    crs = gpd.GeoSeries([], crs=WORK).crs
    with open_layer(path, "detailed_plan", work_crs=crs, catalogue=catalogue, chunk_features=2) as stream:
        chunks = list(stream.chunks())
    assert stream.streamed and len(chunks) == 3
    streamed = sorted((r.feature_id, r.problem) for c in chunks for r in c.repairs)
    whole = sorted((r.feature_id, r.problem) for r in read(path, catalogue).repairs)
    assert streamed == whole and ("KG-2", "indicator_not_numeric") in streamed


def test_cli_import_with_field_override(tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("BLUEPRINT_DATABASE_URL", raising=False)
    path = write(tmp_path, {"YDDM": ["0701", "1001"], "容积率": [2.5, "abc"]})
    runner = CliRunner()
    result = runner.invoke(
        build_app(), ["layers", "import", str(path), "--kind", "detailed_plan", "--field", "RJL=容积率"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [
        (r["feature_id"], r["problem"]) for r in summary["repairs"] if r["problem"] == "indicator_not_numeric"
    ] == [("KG-2", "indicator_not_numeric")]
    bad = write(tmp_path, {"YDDM": ["0701", "9999"]}, name="bad.gpkg")
    result = runner.invoke(build_app(), ["layers", "import", str(bad), "--kind", "detailed_plan"])
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "unknown_land_use_code" and "KG-2" in error["detail"]
