"""checks.checklist: the 用地清单 (land checklist) assembled from a stored screen result, per parcel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from layers.catalogue import Catalogue

# the catalogue groups, in the order the checklist lists them, with the section each fills
SECTIONS: tuple[tuple[str, str], ...] = (("line", "controls"), ("zone", "zones"), ("overlay", "overlays"))
# kinds listed in their own sections (conditions, assessments), not again among the overlays
OWN_SECTION_KINDS = frozenset({"detailed_plan", "regional_assessment"})
REUSABLE = "exempt"
ASSESSMENT_ORDER = ("due", "expired", "partial", "exempt")  # what the applicant must act on first


def split_source(text: str) -> dict[str, str]:
    """``"layer:feature_id"`` (as the engine records sources) → ``{"layer", "feature_id"}``."""
    layer, _sep, feature = str(text).partition(":")
    return {"layer": layer, "feature_id": feature}


def _hit_item(hit: Mapping[str, Any], group: str, version: str) -> dict[str, Any]:
    """One line, zone or overlay the parcel touches, with where it comes from."""
    return {
        "kind": hit.get("kind"),
        "name_zh": hit.get("name_zh"),
        "name_en": hit.get("name_en"),
        "group": group,
        "rule": hit.get("rule"),
        "overlap_m2": hit.get("overlap_area_m2"),
        "overlap_ratio": hit.get("overlap_ratio"),
        "below_tolerance": bool(hit.get("below_tolerance")),
        "sources": [{**split_source(s), "blueprint_version": version} for s in hit.get("feature_ids") or []],
        "piece_ids": list(hit.get("piece_ids") or []),
    }


def _condition_item(condition: Mapping[str, Any], version: str) -> dict[str, Any]:
    """A planning condition of one detailed-plan parcel, as the check found it, with its source."""
    findings = list(condition.get("findings") or [])
    return {
        **condition,
        "source": {
            "layer": condition.get("layer"),
            "feature_id": condition.get("feature_id"),
            "blueprint_version": version,
        },
        "findings": findings,
        "breaches": [f.get("indicator") for f in findings if f.get("ok") is False],
    }


def _assessment_item(assessment: Mapping[str, Any], version: str) -> dict[str, Any]:
    documents = [{**d, "blueprint_version": version} for d in assessment.get("documents") or []]
    return {**assessment, "documents": documents}


def _sections(parcel: Mapping[str, Any], catalogue: Catalogue | None, version: str) -> dict[str, list]:
    """The parcel's hits sorted into controls (三线), zones (三区), overlays and anything else."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for _group, name in SECTIONS}
    out["other"] = []
    by_group = dict(SECTIONS)
    for hit in parcel.get("conflicts") or []:
        kind = str(hit.get("kind"))
        if kind in OWN_SECTION_KINDS:
            continue
        group = catalogue[kind].group if catalogue is not None and kind in catalogue else "other"
        out[by_group.get(group, "other")].append(_hit_item(hit, group, version))
    return out


def _parcel_summary(entry: Mapping[str, Any]) -> dict[str, int]:
    assessments = entry["assessments"]
    return {
        "controls": len(entry["controls"]),
        "zones": len(entry["zones"]),
        "overlays": len(entry["overlays"]),
        "conditions": len(entry["conditions"]),
        "conditions_breached": sum(1 for c in entry["conditions"] if c.get("outcome") == "conflict"),
        "assessments_reusable": sum(1 for a in assessments if a.get("status") == REUSABLE),
        "assessments_to_do": sum(1 for a in assessments if a.get("status") != REUSABLE),
    }


def parcel_checklist(parcel: Mapping[str, Any], catalogue: Catalogue | None, version: str) -> dict[str, Any]:
    """The checklist of one screened parcel."""
    assessments = [_assessment_item(a, version) for a in parcel.get("assessments") or []]
    entry: dict[str, Any] = {
        "parcel_id": parcel.get("parcel_id"),
        "name": parcel.get("name") or "",
        "area_m2": parcel.get("area_m2"),
        "verdict": parcel.get("verdict"),
        **_sections(parcel, catalogue, version),
        "conditions": [_condition_item(c, version) for c in parcel.get("conditions") or []],
        "assessments": assessments,
        # reusable (免于单独评估) apart from what is still to be done, as the developer reads it
        "assessments_reusable": [a["type"] for a in assessments if a.get("status") == REUSABLE],
        "assessments_to_do": [
            a["type"]
            for a in sorted(
                (a for a in assessments if a.get("status") != REUSABLE),
                key=lambda a: (
                    ASSESSMENT_ORDER.index(a["status"]) if a.get("status") in ASSESSMENT_ORDER else 9
                ),
            )
        ],
    }
    entry["summary"] = _parcel_summary(entry)
    return entry


def build_checklist(
    result: Mapping[str, Any],
    *,
    catalogue: Catalogue | None = None,
    blueprint_checksum: str = "",
    project: Mapping[str, Any] | None = None,
    stored: bool = True,
    checked_at: str | None = None,
) -> dict[str, Any]:
    """The 用地清单 of a screen result (a stored check's JSON, or one screened just now: ``stored=False``).

    ``checked_at`` is when the check ran (ISO 8601): the stored check's time, or now for ``stored=False``.

    Nothing is recomputed: every number, limit and status is the result's own, so the checklist and
    the check it came from always agree.
    """
    version = str(result.get("blueprint_version") or "")
    parcels = [parcel_checklist(p, catalogue, version) for p in result.get("parcels") or []]
    totals = {
        key: sum(p["summary"][key] for p in parcels)
        for key in (
            "controls",
            "zones",
            "overlays",
            "conditions",
            "conditions_breached",
            "assessments_reusable",
            "assessments_to_do",
        )
    }
    return {
        "title_zh": "用地清单",
        "title_en": "Land checklist",
        "check_id": result.get("check_id") if stored else None,
        "stored": stored,
        "checked_at": checked_at,
        "blueprint": {"version": version, "checksum": blueprint_checksum},
        "project": dict(project) if project else None,
        "project_type": result.get("project_type"),
        "verdict": result.get("verdict"),
        "declared": result.get("declared"),
        "rules": result.get("rules"),
        "parcels": parcels,
        "summary": {"parcels": len(parcels), **totals},
    }
