"""viewer.report: the printable review report of one check (HTML with an offline map image, and PDF)."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pyproj import CRS

from blueprint.checksum import blueprint_checksum
from layers.catalogue import Catalogue
from layers.crs import OUTPUT_CRS, crs_label
from viewer import conditions as planning
from viewer.labels import (
    DECISION,
    REPAIR_ACTION,
    REPAIR_PROBLEM,
    RULE,
    STATUS,
    VERDICT,
    Label,
    label,
    zh_en,
)
from viewer.layer_index import UNPLANNED
from viewer.page import GROUP_ORDER, render_template
from viewer.source import ViewerSource

# Debian's chromium drives the PDF print; override with BLUEPRINT_CHROMIUM where it lives elsewhere
CHROMIUM = os.environ.get("BLUEPRINT_CHROMIUM", "/usr/bin/chromium")
_PRINTERS = threading.BoundedSemaphore(2)  # a Chromium is ~150 MB: at most two print at once
MAP_MARGIN = 0.35  # context around the parcels, as a share of their extent
MIN_MAP_HALF_SIZE_M = 150.0  # a tiny parcel still shows its neighbourhood
# a CJK font for the Chinese legend of the map image (Debian's fonts-wqy-microhei, installed by setup)
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
AREA_METHOD = ("平面面积：高斯-克吕格投影平面坐标计算；椭球面积：CGCS2000 椭球面测地线计算（pyproj Geod）",
               "Plane areas in the Gauss-Krüger working CRS; ellipsoidal areas on the CGCS2000 ellipsoid "
               "(pyproj Geod)")


@dataclass(frozen=True)
class ReportInfo:
    """What the reports state beyond the check itself: names of project types, the rules in force."""

    project_types: Mapping[str, Label] = field(default_factory=dict)
    rules_file: str = ""
    rules_sha256: str = ""


class ReportUnavailable(RuntimeError):
    """The PDF cannot be produced on this machine (no Chromium)."""


def _frame_4326(obj: Any) -> gpd.GeoDataFrame:
    """A frame from a GeoJSON geometry, Feature or FeatureCollection in EPSG:4326."""
    if not obj:
        return gpd.GeoDataFrame(geometry=[], crs=OUTPUT_CRS)
    if obj.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in obj.get("features", [])]
    elif obj.get("type") == "Feature":
        geoms = [obj.get("geometry")]
    else:
        geoms = [obj]
    shapes = [shapely.from_geojson(json.dumps(g)) for g in geoms if g]
    return gpd.GeoDataFrame(geometry=shapes, crs=OUTPUT_CRS)


def _overlaps(check: dict[str, Any], work_crs: CRS) -> gpd.GeoDataFrame:
    hits = [hit for parcel in check.get("parcels", []) for hit in parcel.get("conflicts", [])]
    rows = [{"kind": hit.get("kind"), "geometry": shapely.from_geojson(json.dumps(hit["geometry"]))}
            for hit in hits if hit.get("geometry")]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=OUTPUT_CRS) if rows else \
        gpd.GeoDataFrame({"kind": []}, geometry=[], crs=OUTPUT_CRS)
    return frame.to_crs(work_crs)


def _extent(frames: list[gpd.GeoDataFrame]) -> tuple[float, float, float, float] | None:
    geoms = [g for f in frames for g in f.geometry if g is not None and not g.is_empty]
    if not geoms:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    half = max((maxx - minx), (maxy - miny)) * (0.5 + MAP_MARGIN)
    half = max(half, MIN_MAP_HALF_SIZE_M)
    return cx - half, cy - half, cx + half, cy + half


def _cjk_font() -> Any:
    """matplotlib FontProperties of an installed CJK font, or ``None`` (labels then fall back to English)."""
    from matplotlib.font_manager import FontProperties

    for path in CJK_FONTS:
        if Path(path).exists():
            return FontProperties(fname=path)
    return None


def map_png(pieces: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, overlaps: gpd.GeoDataFrame,
            colours: dict[str, str], order: dict[str, int] | None = None,
            names: Mapping[str, str] | None = None) -> bytes | None:
    """A PNG of the blueprint around the parcels (matplotlib, no network, no basemap).

    ``order`` ranks kinds bottom to top (zones under lines, as on the live map); ``names`` are the
    legend's labels per kind (Chinese, drawn with a CJK font so they are not boxes).
    """
    order = order or {}
    names = names or {}
    import matplotlib

    matplotlib.use("Agg")  # headless: the server has no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    extent = _extent([parcels, overlaps])
    if extent is None:
        return None
    font = _cjk_font()
    near = pieces.iloc[pieces.sindex.query(shapely.box(*extent))] if len(pieces) else pieces
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    handles = []
    for kind, group in near.groupby("kind"):
        colour = colours.get(str(kind), "#cccccc")
        group.plot(ax=ax, color=colour, alpha=0.55, edgecolor="#ffffff", linewidth=0.3)
        text = names.get(str(kind), str(kind)) if font is not None else str(kind)
        handles.append(Patch(facecolor=colour, alpha=0.55, label=text))
    for kind in sorted(set(overlaps["kind"]), key=lambda k: order.get(str(k), 1)):
        # kinds outside the catalogue (e.g. "outside the urban boundary") are faint grey, never guessed
        known = str(kind) in colours
        overlaps[overlaps["kind"] == kind].plot(
            ax=ax, facecolor=colours.get(str(kind), "#999999"), edgecolor="#000000", hatch="///",
            linewidth=0.8, alpha=0.9 if known else 0.3)
    if len(parcels):
        parcels.boundary.plot(ax=ax, color="#1f4fff", linewidth=2.2)
        handles.append(Patch(facecolor="none", edgecolor="#1f4fff", linewidth=2,
                             label="申报地块" if font is not None else "parcels"))
    if len(overlaps):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="重叠部分" if font is not None else "overlaps"))
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=8, prop=font, framealpha=0.85)
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    ax.set_xlabel("Y / easting (m)", fontsize=8)
    ax.set_ylabel("X / northing (m)", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def stored_number(value: Any) -> str:
    """A number exactly as the stored result holds it (its JSON text), so every format agrees."""
    return json.dumps(value) if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def _parcel_rows(check: dict[str, Any], catalogue: Catalogue) -> list[dict[str, Any]]:
    rows = []
    for parcel in check.get("parcels", []):
        hits = []
        for hit in parcel.get("conflicts", []):
            kind = catalogue.get(hit.get("kind", "")) if hit.get("kind") in catalogue else None
            hits.append({**hit, "colour": kind.colour if kind else "#999999",
                         "rule_label": label(RULE, hit.get("rule"))})
        rows.append({**parcel, "hits": hits, "verdict_label": label(VERDICT, parcel.get("verdict"))})
    return rows


def table_rows(check: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per parcel × control kind touched (a parcel touching none gets one row without a kind),
    with the stored numbers unchanged: what the Word table and the Excel sheet list."""
    rows: list[dict[str, Any]] = []
    for parcel in check.get("parcels", []):
        base = {
            "parcel_id": str(parcel.get("parcel_id", "")),
            "parcel_name": parcel.get("name") or "",
            "parcel_verdict": zh_en(VERDICT, parcel.get("verdict")),
            "parcel_area_m2": parcel.get("area_m2"),
            "parcel_ellipsoidal_area_m2": parcel.get("ellipsoidal_area_m2"),
        }
        hits = parcel.get("conflicts") or []
        if not hits:
            rows.append({**base, "kind_zh": "未触及管控图层", "kind_en": "no control layer", "rule": "",
                         "overlap_area_m2": None, "overlap_ellipsoidal_area_m2": None, "overlap_ratio": None,
                         "below_tolerance": "", "regulation_zh": "", "citation_zh": "",
                         "requirements_zh": ""})
        for hit in hits:
            rows.append({
                **base,
                "kind_zh": hit.get("name_zh") or str(hit.get("kind")),
                "kind_en": hit.get("name_en") or "",
                "rule": zh_en(RULE, hit.get("rule")),
                "overlap_area_m2": hit.get("overlap_area_m2"),
                "overlap_ellipsoidal_area_m2": hit.get("overlap_ellipsoidal_area_m2"),
                "overlap_ratio": hit.get("overlap_ratio"),
                "below_tolerance": "是 yes" if hit.get("below_tolerance") else "否 no",
                "regulation_zh": (hit.get("regulation") or {}).get("zh", ""),
                "citation_zh": (hit.get("regulation") or {}).get("reference_zh", ""),
                "requirements_zh": "；".join(n.get("zh", "") for n in hit.get("requirements") or []),
            })
    return rows


def requirement_rows(check: dict[str, Any]) -> list[dict[str, Any]]:
    """What the applicant must provide or obtain (the check's ``requirements``), numbered, with the
    parcels and control layers that ask for it by name; empty for checks made before requirements."""
    names = {str(h.get("kind")): h.get("name_zh") or str(h.get("kind"))
             for p in check.get("parcels", []) for h in p.get("conflicts") or []}
    return [{"no": i, "zh": r.get("zh", ""), "en": r.get("en", ""), "basis": r.get("basis", ""),
             "parcels_text": "、".join(str(p) for p in r.get("parcel_ids") or []),
             "kinds_text": "、".join(names.get(str(k), str(k)) for k in r.get("kinds") or [])}
            for i, r in enumerate(check.get("requirements") or [], start=1)]


def rules_version_text(check: dict[str, Any]) -> str:
    """Which rules version the check applied, as stored in the check (not the rules in force today)."""
    rules = check.get("rules") or {}
    if not rules.get("version"):
        return "未记录（该检查早于规则版本记录） not recorded"
    effective = f"，生效日期 {rules['effective_date']}" if rules.get("effective_date") else ""
    return f"{rules['version']}{effective}"


def all_repairs(check: dict[str, Any]) -> list[dict[str, str]]:
    """Every repair made to the input: per parcel, then those of parcels dropped entirely."""
    out = [{**r, "parcel_id": str(p.get("parcel_id", ""))} for p in check.get("parcels", [])
           for r in p.get("repairs") or []]
    out += [{**r, "parcel_id": str(r.get("feature_id", ""))} for r in check.get("repairs") or []]
    return [{**r, "problem": zh_en(REPAIR_PROBLEM, r.get("problem")),
             "action": zh_en(REPAIR_ACTION, r.get("action"))} for r in out]


def _check_parcels(check: dict[str, Any]) -> gpd.GeoDataFrame:
    """The parcels as the check screened them (EPSG:4326 in the result), not the project's current set."""
    geoms = [p.get("geometry") for p in check.get("parcels", []) if p.get("geometry")]
    return _frame_4326({"type": "FeatureCollection",
                        "features": [{"type": "Feature", "geometry": g} for g in geoms]})


def _reviews(project: dict[str, Any], check: dict[str, Any]) -> list[dict[str, Any]]:
    reviews = project.get("reviews") or check.get("reviews") or []
    return [{**r, "decision_label": zh_en(DECISION, r.get("decision"))} for r in reviews]


def report_context(source: ViewerSource, check_id: str, catalogue: Catalogue,
                   info: ReportInfo | None = None, *, with_map: bool = True) -> dict[str, Any]:
    """Everything the reports show; ``KeyError`` when the check is unknown.

    ``with_map=False`` skips rendering the map image (the Excel report has none; matplotlib is the
    slowest part of a report).
    """
    info = info or ReportInfo()
    check = source.check(check_id)
    if check is None:
        raise KeyError(check_id)
    project = dict(source.project_for_check(check_id) or {})
    if project:
        project["status_label"] = zh_en(STATUS, project.get("status"))
        project["type_label"] = zh_en(info.project_types, project.get("project_type"))
    work_crs = source.work_crs()
    version = str(check.get("blueprint_version") or "")
    meta = next((v for v in source.versions() if str(v.get("version")) == version), {})
    try:
        pieces = source.pieces(version)
    except KeyError:
        pieces = gpd.GeoDataFrame({"kind": []}, geometry=[], crs=work_crs)
    parcels = _check_parcels(check).to_crs(work_crs)
    png = None
    if with_map:
        png = map_png(pieces, parcels, _overlaps(check, work_crs),
                      {k.key: k.colour for k in catalogue.values()},
                      {k.key: GROUP_ORDER.get(k.group, 1) for k in catalogue.values()},
                      {**{k.key: k.name_zh for k in catalogue.values()}, UNPLANNED: "未规划"})
    kinds_seen = sorted({str(k) for k in pieces["kind"]}) if len(pieces) else []
    tolerance = check.get("tolerance") or {}
    conditions = planning.conditions(check.get("parcels", []))
    return {
        "check": check, "project": project, "reviews": _reviews(project, check),
        "parcels": _parcel_rows(check, catalogue),
        "rows": table_rows(check),
        "repairs": all_repairs(check),
        "verdict_label": label(VERDICT, check.get("verdict")),
        "type_label": zh_en(info.project_types, check.get("project_type")),
        "map_png_bytes": png,
        "map_png": base64.b64encode(png).decode("ascii") if png else None,
        "legend": [catalogue[k] for k in kinds_seen if k in catalogue],
        "crs_label": crs_label(work_crs),
        "area_method": AREA_METHOD,
        "blueprint_checksum": blueprint_checksum(meta),
        "rules_file": info.rules_file,
        "rules_sha256": info.rules_sha256,
        "rules_version": rules_version_text(check),
        "requirements": requirement_rows(check),
        # 规划条件 and 区域评估 (empty for checks made without a detailed plan or assessments)
        "conditions": conditions, "condition_rows": planning.finding_rows(conditions),
        "assessments": planning.assessments(check.get("parcels", [])),
        "declared_text": planning.declared_text(check.get("declared")),
        "tolerance_text": f"{tolerance.get('m2', '–')} m² 且 and {tolerance.get('ratio', '–')}",
        "checked_at": time_text(_check_time(source, check_id)),
        "generated_at": time_text(datetime.now(UTC).isoformat()),
        "num": stored_number,
    }


def time_text(iso: str | None) -> str:
    """An ISO 8601 instant as the reports print it (minutes, UTC); ``–`` when unknown."""
    if not iso:
        return "–"
    moment = datetime.fromisoformat(str(iso))
    if moment.tzinfo is None:  # stored instants are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_time(source: ViewerSource, check_id: str) -> str | None:
    """When the check ran, from the optional ``check_created_at`` of the source (``None`` without it)."""
    created_at = getattr(source, "check_created_at", None)
    return created_at(check_id) if callable(created_at) else None


def report_html(source: ViewerSource, check_id: str, catalogue: Catalogue,
                info: ReportInfo | None = None) -> str:
    """The self-contained report page (the map is an inline PNG; nothing is fetched)."""
    return render_template("report.html", **report_context(source, check_id, catalogue, info))


def html_to_pdf(html: str, *, executable: str = CHROMIUM) -> bytes:
    """Print ``html`` to an A4 PDF in headless Chromium (Playwright); every network request is refused."""
    if not os.path.exists(executable):
        raise ReportUnavailable(f"no Chromium at {executable} (set BLUEPRINT_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with _PRINTERS, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page()
            # the report is self-contained; anything it would fetch is a bug, never a leak
            page.route("**/*", lambda route: route.abort())
            page.set_content(html, wait_until="load")
            return page.pdf(format="A4", print_background=True,
                            margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()
