"""A hand-made screen result with planning conditions and regional assessments (issue 14's contract)."""

from __future__ import annotations

from typing import Any

EIGHT = (
    "land_survey",
    "mineral_overlay",
    "geohazard",
    "soil_water",
    "cultural_relics",
    "flood_impact",
    "seismic_safety",
    "climate_feasibility",
)


def hit(kind: str, name_zh: str, rule: str, area: float, sources: list[str], pieces: list[str]) -> dict:
    return {
        "kind": kind,
        "name_zh": name_zh,
        "name_en": kind,
        "rule": rule,
        "overlap_area_m2": area,
        "overlap_ratio": 0.25,
        "below_tolerance": False,
        "feature_ids": sources,
        "piece_ids": pieces,
        "geometry": None,
        "regulation": {},
        "requirements": [],
    }


def finding(indicator: str, declared: Any, limit: Any, bound: str, ok: bool) -> dict:
    margin = (
        None
        if bound == "compatible"
        else round((limit - declared) if bound == "max" else (declared - limit), 4)
    )
    return {
        "indicator": indicator,
        "name_zh": indicator,
        "name_en": indicator,
        "declared": declared,
        "limit": limit,
        "bound": bound,
        "margin": margin,
        "ok": ok,
        "explanation_zh": "…",
        "explanation_en": "…",
    }


def assessment(kind: str, status: str, covered: float, uncovered: float, docs: list[dict]) -> dict:
    return {
        "type": kind,
        "name_zh": kind,
        "name_en": kind,
        "status": status,
        "covered_m2": covered,
        "uncovered_m2": uncovered,
        "documents": docs,
        "explanation_zh": "…",
        "explanation_en": "…",
    }


def sample_result() -> dict[str, Any]:
    """Parcel P1 (4,000 m²): on farmland and a hazard zone, half on plan parcel K-03 (FAR ≤ 2.5, breached
    by a declared 2.8) and half on K-04 (all within); geohazard assessment covers it, flood impact half."""
    doc = {
        "layer": "区域评估",
        "feature_id": "PG-2",
        "number": "铜自然资〔2025〕12号",
        "approved": "2025-03-01",
        "valid_until": "2028-02-28",
        "valid": True,
    }
    conditions = [
        {
            "layer": "控规",
            "feature_id": "K-03",
            "overlap_m2": 2000.0,
            "land_use": {"code": "0701", "name_zh": "城镇住宅用地", "name_en": "urban residential"},
            "limits": {
                "far_max": 2.5,
                "far_min": None,
                "building_density_max": 30.0,
                "green_ratio_min": 35.0,
                "height_max_m": 60.0,
            },
            "findings": [
                finding("land_use", "0701", "0701", "compatible", True),
                finding("far", 2.8, 2.5, "max", False),
                finding("green_ratio", 36.0, 35.0, "min", True),
            ],
            "outcome": "conflict",
        },
        {
            "layer": "控规",
            "feature_id": "K-04",
            "overlap_m2": 2000.0,
            "land_use": {"code": "0701", "name_zh": "城镇住宅用地", "name_en": "urban residential"},
            "limits": {
                "far_max": 3.0,
                "far_min": 1.0,
                "building_density_max": None,
                "green_ratio_min": 30.0,
                "height_max_m": None,
            },
            "findings": [finding("far", 2.8, 3.0, "max", True)],
            "outcome": "pass",
        },
    ]
    statuses = {
        "geohazard": ("exempt", 4000.0, 0.0, [doc]),
        "flood_impact": ("partial", 2000.0, 2000.0, [{**doc, "feature_id": "PG-5"}]),
        "seismic_safety": ("expired", 4000.0, 0.0, [{**doc, "feature_id": "PG-7", "valid": False}]),
    }
    assessments = [assessment(t, *statuses.get(t, ("due", 0.0, 4000.0, []))) for t in EIGHT]
    return {
        "check_id": "chk_1",
        "blueprint_version": "v3",
        "project_type": "residential",
        "verdict": "conflict",
        "declared": {"land_use": "0701", "far": 2.8, "green_ratio": 36.0},
        "rules": {"version": "2026.1"},
        "parcels": [
            {
                "parcel_id": "P1",
                "name": "一号地",
                "area_m2": 4000.0,
                "verdict": "conflict",
                "conflicts": [
                    hit(
                        "permanent_farmland",
                        "永久基本农田",
                        "forbidden",
                        1000.0,
                        ["农田:F-9", "农田:F-10"],
                        ["000012", "000013"],
                    ),
                    hit("urban_space", "城镇空间", "allowed", 4000.0, ["三区:U1"], ["000012"]),
                    hit("geohazard_zone", "地质灾害高易发区", "conditional", 500.0, ["灾害:G2"], ["000013"]),
                    hit("detailed_plan", "控规地块", "allowed", 4000.0, ["控规:K-03"], ["000012"]),
                ],
                "conditions": conditions,
                "assessments": assessments,
            },
            {"parcel_id": "P2", "area_m2": 100.0, "verdict": "pass", "conflicts": []},
        ],
    }
