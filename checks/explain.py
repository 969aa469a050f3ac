"""checks.explain: the Chinese and English explanation of every parcel and submission verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

VERDICT_ZH = {"pass": "通过", "review": "需复核", "conflict": "冲突"}
RULE_ZH = {"forbidden": "禁止", "conditional": "有条件允许", "allowed": "允许"}
RULE_EN = {"forbidden": "forbidden", "conditional": "conditional", "allowed": "allowed"}


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def _hit_zh(hit: Mapping[str, Any], tolerance: Mapping[str, float]) -> str:
    """One sentence per layer: 占用…平方米（…%），规则：…；依据：…。"""
    text = (f"占用{hit['name_zh']} {hit['overlap_area_m2']:.2f} 平方米（占地块 {_pct(hit['overlap_ratio'])}，"
            f"椭球面积 {hit['overlap_ellipsoidal_area_m2']:.2f} 平方米），规则：{RULE_ZH[hit['rule']]}")
    if hit.get("below_tolerance") and hit["rule"] != "allowed":
        text += (f"；重叠低于容差（{tolerance['m2']:g} 平方米且 {_pct(tolerance['ratio'])}），"
                 f"不判为冲突，列为复核")
    regulation = hit.get("regulation")
    if regulation and hit["rule"] != "allowed":
        text += f"；依据：{regulation['zh'].rstrip('。')}"
        if regulation.get("reference_zh"):
            text += f"（{regulation['reference_zh']}）"
    needs = hit.get("requirements") or []
    if needs and hit["rule"] == "conditional":
        text += "；须提供或取得：" + "、".join(n["zh"] for n in needs)
    return text + "。"


def _hit_en(hit: Mapping[str, Any], tolerance: Mapping[str, float]) -> str:
    """One sentence per layer: <layer>: … m² (…%), rule …; basis: …."""
    text = (f"{hit['name_en']}: {hit['overlap_area_m2']:.2f} m² "
            f"({_pct(hit['overlap_ratio'])} of the parcel, ellipsoidal "
            f"{hit['overlap_ellipsoidal_area_m2']:.2f} m²), rule: {RULE_EN[hit['rule']]}")
    if hit.get("below_tolerance") and hit["rule"] != "allowed":
        text += (f"; below the tolerance ({tolerance['m2']:g} m² and {_pct(tolerance['ratio'])}), "
                 f"so not a conflict but to be reviewed")
    regulation = hit.get("regulation")
    if regulation and hit["rule"] != "allowed":
        text += f"; basis: {regulation['en'].rstrip('.')}"
        if regulation.get("number"):
            text += f" ({regulation['number']}, {regulation['article']})"
    needs = hit.get("requirements") or []
    if needs and hit["rule"] == "conditional":
        text += "; the applicant must provide or obtain: " + "; ".join(n["en"] for n in needs)
    return text + "."


def explain_parcel(parcel: Mapping[str, Any], project_label: tuple[str, str],
                   tolerance: Mapping[str, float]) -> tuple[str, str]:
    """(zh, en) explanation of one parcel entry of the result: verdict, each layer, area and rule."""
    pid, verdict = parcel["parcel_id"], parcel["verdict"]
    head_zh = (f"地块 {pid}（{project_label[0]}，面积 {parcel['area_m2']:.2f} 平方米，"
               f"椭球面积 {parcel['ellipsoidal_area_m2']:.2f} 平方米）：{VERDICT_ZH[verdict]}。")
    head_en = (f"Parcel {pid} ({project_label[1]}, area {parcel['area_m2']:.2f} m², ellipsoidal "
               f"{parcel['ellipsoidal_area_m2']:.2f} m²): {verdict}.")
    hits: Sequence[Mapping[str, Any]] = parcel["conflicts"]
    if not hits:
        return (head_zh + "未涉及任何管控图层。",
                head_en + " It touches no control layer.")
    body_zh = "".join(_hit_zh(h, tolerance) for h in hits)
    body_en = " ".join(_hit_en(h, tolerance) for h in hits)
    return head_zh + body_zh, f"{head_en} {body_en}"


def explain_submission(verdict: str, parcels: Sequence[Mapping[str, Any]], version: str,
                       project_label: tuple[str, str]) -> tuple[str, str]:
    """(zh, en) one-paragraph summary: overall verdict and how many parcels got which verdict."""
    counts = {v: sum(1 for p in parcels if p["verdict"] == v) for v in ("conflict", "review", "pass")}
    zh = (f"蓝图版本 {version}，{project_label[0]}，共 {len(parcels)} 个地块：总体结论 {VERDICT_ZH[verdict]}"
          f"（冲突 {counts['conflict']}，需复核 {counts['review']}，通过 {counts['pass']}）。")
    en = (f"Blueprint {version}, {project_label[1]}, {len(parcels)} parcel(s): overall {verdict} "
          f"({counts['conflict']} conflict, {counts['review']} review, {counts['pass']} pass).")
    blocking = [p["parcel_id"] for p in parcels if p["verdict"] == "conflict"]
    if blocking:
        zh += f"冲突地块：{'、'.join(blocking)}。"
        en += f" Conflicting parcels: {', '.join(blocking)}."
    return zh, en


def feature_collection(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result as an RFC 7946 FeatureCollection: each parcel, then each of its overlaps."""
    features: list[dict[str, Any]] = []
    for parcel in result["parcels"]:
        props = {k: v for k, v in parcel.items() if k not in ("geometry", "conflicts")}
        props.update(role="parcel", check_id=result["check_id"], project_type=result["project_type"])
        features.append({"type": "Feature", "geometry": parcel.get("geometry"), "properties": props})
        for hit in parcel["conflicts"]:
            hprops = {k: v for k, v in hit.items() if k != "geometry"}
            hprops.update(role="overlap", parcel_id=parcel["parcel_id"])
            features.append({"type": "Feature", "geometry": hit["geometry"], "properties": hprops})
    return {"type": "FeatureCollection", "features": features}
