"""`blueprint check --declare` against a stored blueprint with a detailed plan (embedded database)."""

from __future__ import annotations

import json

import pytest

from blueprint.merge import build_blueprint
from blueprint.precedence import load_precedence
from layers.catalogue import load_catalogue
from runtime.settings import Settings
from runtime.stores import open_stores
from tests.checks.conftest import parcels, rect
from tests.checks.test_conditions import _layer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """v1: city [0, 400] × [0, 200], urban boundary from x 100, plan A 0701 FAR ≤ 2.5 at [100, 200] × [0, 100]
    """
    root = tmp_path_factory.mktemp("cli14")
    catalogue = load_catalogue()
    layers = [
        _layer("city_boundary", [rect(0, 0, 400, 200)]),
        _layer("urban_boundary", [rect(100, 0, 400, 200)]),
        _layer("detailed_plan", [rect(100, 0, 200, 100)], {"YDDM": ["0701"], "RJL": [2.5]}),
        _layer(
            "regional_assessment",
            [rect(100, 0, 200, 100)],
            {"PGLX": ["geohazard"], "WH": ["W1"], "PZRQ": ["2024-01-01"], "YXQZ": ["2025-12-31"]},
        ),
    ]
    stores = open_stores(Settings(data_dir=root))
    try:
        for layer in layers:
            stores.layers.save(layer)
        draft = build_blueprint(
            [stores.layers.get(lay.name) for lay in layers],
            catalogue=catalogue,
            precedence=load_precedence(None, catalogue),
            tolerance_m=0.5,
            version="v1",
        )
        stores.blueprints.save_draft(draft)
        stores.blueprints.publish("v1", by="test")
    finally:
        stores.close()
    parcels(rect(120, 20, 180, 80)).frame.to_file(root / "p.gpkg")
    return root


@pytest.mark.parametrize(
    ("declare", "code", "outcome"),
    [
        ([], 0, "listed"),
        (["far=2.4"], 0, "pass"),
        (["far=2.8"], 2, "conflict"),
        (["far=2", "land_use=1001"], 2, "conflict"),
        (["land_use=070101"], 0, "pass"),
    ],
)
def test_declared_values_decide_the_exit_code(run, data_dir, declare, code, outcome):
    args = [x for d in declare for x in ("--declare", d)]
    result = run(
        "check", data_dir / "p.gpkg", "-t", "residential", "--no-save", "--check-date", "2025-01-01", *args
    )
    assert result.exit_code == code, result.output
    (condition,) = json.loads(result.stdout)["parcels"][0]["conditions"]
    assert condition["outcome"] == outcome and condition["overlap_m2"] == pytest.approx(3600.0)


def test_check_date_decides_assessment_validity(run, data_dir):
    def status(day: str) -> str:
        doc = json.loads(run("check", data_dir / "p.gpkg", "--no-save", "--check-date", day).stdout)
        return next(a["status"] for a in doc["parcels"][0]["assessments"] if a["type"] == "geohazard")

    assert (status("2025-06-01"), status("2026-01-01")) == ("exempt", "expired")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--declare", "far=abc"), "declared.far"),
        (("--declare", "far"), "--declare"),
        (("--declare", "building_density=150"), "declared.building_density"),
        (("--check-date", "2025-13-01"), "--check-date"),
    ],
)
def test_bad_declared_value_exits_3_naming_the_field(run, data_dir, args, needle):
    result = run("check", data_dir / "p.gpkg", "--no-save", *args)
    assert result.exit_code == 3, result.output
    assert needle in json.loads(result.stdout)["error"]["detail"]
