"""viewer.report: the printable review report of one check (HTML with an offline map image, and PDF)."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import shapely
from pyproj import CRS

from layers.catalogue import Catalogue
from layers.crs import OUTPUT_CRS
from viewer.page import GROUP_ORDER, render_template
from viewer.source import ViewerSource

# Debian's chromium drives the PDF print; override with BLUEPRINT_CHROMIUM where it lives elsewhere
CHROMIUM = os.environ.get("BLUEPRINT_CHROMIUM", "/usr/bin/chromium")
_PRINTERS = threading.BoundedSemaphore(2)  # a Chromium is ~150 MB: at most two print at once
MAP_MARGIN = 0.35  # context around the parcels, as a share of their extent
MIN_MAP_HALF_SIZE_M = 150.0  # a tiny parcel still shows its neighbourhood
VERDICT = {"pass": ("通过", "Pass"), "review": ("需审查", "Review"), "conflict": ("冲突", "Conflict")}
RULE = {"forbidden": ("禁止", "forbidden"), "conditional": ("有条件", "conditional"),
        "allowed": ("允许", "allowed")}


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


def map_png(pieces: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, overlaps: gpd.GeoDataFrame,
            colours: dict[str, str], order: dict[str, int] | None = None) -> bytes | None:
    """A PNG of the blueprint around the parcels (matplotlib, no network, no basemap).

    ``order`` ranks kinds bottom to top (zones under lines, as on the live map).
    """
    order = order or {}
    import matplotlib

    matplotlib.use("Agg")  # headless: the server has no display
    import matplotlib.pyplot as plt

    extent = _extent([parcels, overlaps])
    if extent is None:
        return None
    near = pieces.iloc[pieces.sindex.query(shapely.box(*extent))] if len(pieces) else pieces
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    for kind, group in near.groupby("kind"):
        group.plot(ax=ax, color=colours.get(str(kind), "#cccccc"), alpha=0.55, edgecolor="#ffffff",
                   linewidth=0.3)
    for kind in sorted(set(overlaps["kind"]), key=lambda k: order.get(str(k), 1)):
        # kinds outside the catalogue (e.g. "outside the urban boundary") are faint grey, never guessed
        known = str(kind) in colours
        overlaps[overlaps["kind"] == kind].plot(
            ax=ax, facecolor=colours.get(str(kind), "#999999"), edgecolor="#000000", hatch="///",
            linewidth=0.8, alpha=0.9 if known else 0.3)
    if len(parcels):
        parcels.boundary.plot(ax=ax, color="#1f4fff", linewidth=2.2)
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


def _parcel_rows(check: dict[str, Any], catalogue: Catalogue) -> list[dict[str, Any]]:
    rows = []
    for parcel in check.get("parcels", []):
        hits = []
        for hit in parcel.get("conflicts", []):
            kind = catalogue.get(hit.get("kind", "")) if hit.get("kind") in catalogue else None
            hits.append({**hit, "colour": kind.colour if kind else "#999999",
                         "rule_label": RULE.get(hit.get("rule", ""), (hit.get("rule"), hit.get("rule")))})
        rows.append({**parcel, "hits": hits,
                     "verdict_label": VERDICT.get(parcel.get("verdict", ""), (parcel.get("verdict"),) * 2)})
    return rows


def report_context(source: ViewerSource, check_id: str, catalogue: Catalogue) -> dict[str, Any]:
    """Everything the report shows; ``KeyError`` when the check is unknown."""
    check = source.check(check_id)
    if check is None:
        raise KeyError(check_id)
    project = source.project_for_check(check_id) or {}
    work_crs = source.work_crs()
    version = str(check.get("blueprint_version") or "")
    try:
        pieces = source.pieces(version)
    except KeyError:
        pieces = gpd.GeoDataFrame({"kind": []}, geometry=[], crs=work_crs)
    parcels = _frame_4326(project.get("parcels")).to_crs(work_crs)
    png = map_png(pieces, parcels, _overlaps(check, work_crs), {k.key: k.colour for k in catalogue.values()},
                  {k.key: GROUP_ORDER.get(k.group, 1) for k in catalogue.values()})
    kinds_seen = sorted({str(k) for k in pieces["kind"]}) if len(pieces) else []
    return {
        "check": check, "project": project, "reviews": project.get("reviews") or check.get("reviews") or [],
        "parcels": _parcel_rows(check, catalogue),
        "verdict_label": VERDICT.get(check.get("verdict", ""), (check.get("verdict"),) * 2),
        "map_png": base64.b64encode(png).decode("ascii") if png else None,
        "legend": [catalogue[k] for k in kinds_seen if k in catalogue],
        "crs_label": work_crs.to_string(),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def report_html(source: ViewerSource, check_id: str, catalogue: Catalogue) -> str:
    """The self-contained report page (the map is an inline PNG; nothing is fetched)."""
    return render_template("report.html", **report_context(source, check_id, catalogue))


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
