"""The 用地清单 assembler on hand-made screen results (the contract of issue 14's result keys)."""

from __future__ import annotations

from typing import Any

import pytest

from checks.checklist import build_checklist, split_source
from layers.catalogue import load_catalogue
from tests.checklist_sample import sample_result


@pytest.fixture
def result() -> dict[str, Any]:
    return sample_result()


def test_sections_sort_hits_by_catalogue_group_with_sources(result: dict[str, Any]) -> None:
    sheet = build_checklist(result, catalogue=load_catalogue(), blueprint_checksum="abc")
    p1 = sheet["parcels"][0]
    assert [c["kind"] for c in p1["controls"]] == ["permanent_farmland"]
    assert [z["kind"] for z in p1["zones"]] == ["urban_space"]
    # the detailed plan is listed under conditions, not again as an overlay
    assert [o["kind"] for o in p1["overlays"]] == ["geohazard_zone"]
    farmland = p1["controls"][0]
    assert farmland["overlap_m2"] == 1000.0
    assert farmland["sources"] == [
        {"layer": "农田", "feature_id": "F-9", "blueprint_version": "v3"},
        {"layer": "农田", "feature_id": "F-10", "blueprint_version": "v3"},
    ]
    assert farmland["piece_ids"] == ["000012", "000013"]
    assert sheet["blueprint"] == {"version": "v3", "checksum": "abc"}
    assert sheet["check_id"] == "chk_1" and sheet["stored"] is True


def test_conditions_keep_limits_and_name_breaches(result: dict[str, Any]) -> None:
    p1 = build_checklist(result, catalogue=load_catalogue())["parcels"][0]
    k03, k04 = p1["conditions"]
    assert k03["source"] == {"layer": "控规", "feature_id": "K-03", "blueprint_version": "v3"}
    assert k03["breaches"] == ["far"] and k04["breaches"] == []
    assert k03["limits"]["far_max"] == 2.5 and k04["limits"]["height_max_m"] is None
    # 2.5 − 2.8: the stored margin, not recomputed
    assert k03["findings"][1]["margin"] == pytest.approx(-0.3)


def test_assessments_split_reusable_from_to_do_in_urgency_order(result: dict[str, Any]) -> None:
    p1 = build_checklist(result, catalogue=load_catalogue())["parcels"][0]
    assert p1["assessments_reusable"] == ["geohazard"]
    # five due first (in the result's order), then expired, then partial
    assert p1["assessments_to_do"] == [
        "land_survey",
        "mineral_overlay",
        "soil_water",
        "cultural_relics",
        "climate_feasibility",
        "seismic_safety",
        "flood_impact",
    ]
    geo = next(a for a in p1["assessments"] if a["type"] == "geohazard")
    assert geo["documents"][0]["number"] == "铜自然资〔2025〕12号"
    assert geo["documents"][0]["blueprint_version"] == "v3"


def test_summary_counts(result: dict[str, Any]) -> None:
    sheet = build_checklist(result, catalogue=load_catalogue())
    assert sheet["parcels"][0]["summary"] == {
        "controls": 1,
        "zones": 1,
        "overlays": 1,
        "conditions": 2,
        "conditions_breached": 1,
        "assessments_reusable": 1,
        "assessments_to_do": 7,
    }
    assert sheet["summary"] == {
        "parcels": 2,
        "controls": 1,
        "zones": 1,
        "overlays": 1,
        "conditions": 2,
        "conditions_breached": 1,
        "assessments_reusable": 1,
        "assessments_to_do": 7,
    }


def test_parcel_without_conditions_or_assessments_and_a_fresh_screen(result: dict[str, Any]) -> None:
    sheet = build_checklist(result, stored=False, project={"code": "2026-1"})
    p2 = sheet["parcels"][1]
    assert p2["conditions"] == [] and p2["assessments"] == [] and p2["controls"] == []
    assert sheet["check_id"] is None and sheet["stored"] is False and sheet["project"] == {"code": "2026-1"}
    # without a catalogue no group is guessed: every hit but the own-section kinds lands in "other"
    assert [h["kind"] for h in sheet["parcels"][0]["other"]] == [
        "permanent_farmland",
        "urban_space",
        "geohazard_zone",
    ]


def test_split_source_keeps_colons_in_the_feature_id() -> None:
    assert split_source("控规:K:1") == {"layer": "控规", "feature_id": "K:1"}
    assert split_source("nolayer") == {"layer": "nolayer", "feature_id": ""}
