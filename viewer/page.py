"""viewer.page: the review-meeting map page, a folium map rewired to locally served assets."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import folium
from branca.element import Element, Figure, MacroElement
from folium.plugins import MeasureControl
from jinja2 import Environment, FileSystemLoader, Template, select_autoescape
from pyproj import CRS

from layers.catalogue import Catalogue
from layers.crs import crs_label
from layers.land_use import load_land_use_codes
from viewer.layer_index import CONFLICTS, UNPLANNED

STATIC_URL = "/viewer/static"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# the 三区三线 (three zones, three lines) are on when the page opens; overlays wait to be asked for
DEFAULT_ON_GROUPS = ("line", "zone", "boundary")
# drawing order, bottom to top: zones under lines, the boundary outline and conflicts on top
GROUP_ORDER = {"zone": 0, "overlay": 1, "line": 2, "boundary": 3}

MEASURE_ISSUE_URL = "https://github.com/ljagis/leaflet-measure/issues/171"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def render_template(name: str, **context: Any) -> str:
    """Render one of ``viewer/templates`` (autoescaped)."""
    return _env.get_template(name).render(static=STATIC_URL, **context)


class OfflineMap(folium.Map):
    """A folium map that loads Leaflet from this service instead of CDNs.

    folium's own defaults (jQuery, Bootstrap, Font Awesome, awesome-markers) are dropped: the page
    uses no markers with icons and no Bootstrap widgets, and every byte must come from here.
    """

    # folium reads these as class attributes; ClassVar would clash with its instance annotations
    default_js = [("leaflet", f"{STATIC_URL}/leaflet/leaflet.js")]  # noqa: RUF012
    default_css = [("leaflet_css", f"{STATIC_URL}/leaflet/leaflet.css")]  # noqa: RUF012


class OfflineMeasure(MeasureControl):
    """folium's measure control (leaflet-measure 2.1.7, as folium pins it) served locally."""

    default_js = [("leaflet_measure_js", f"{STATIC_URL}/leaflet-measure/leaflet-measure.js")]  # noqa: RUF012
    default_css = [("leaflet_measure_css", f"{STATIC_URL}/leaflet-measure/leaflet-measure.css")]  # noqa: RUF012


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "<" at all, so neither "</script>" nor "<!--" can
    end or bend the script early (a project code in the URL lands here)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


class ViewerInit(MacroElement):
    """Starts viewer.js on the map; a child of the map so it renders after the map exists."""

    _template = Template("""{% macro script(this, kwargs) %}
        OneBlueprint.init({{ this._parent.get_name() }}, {{ this.config_json }});
    {% endmacro %}""")

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "ViewerInit"
        self.config_json = script_json(config)


@dataclass(frozen=True)
class PageOptions:
    """What one rendering of the page depends on."""

    version: str | None
    versions: list[dict[str, Any]]
    bounds_4326: tuple[float, float, float, float]
    work_crs: CRS
    basemap: dict[str, Any] | None = None  # routes.basemap_config: drawn by viewer.js under everything
    project: str | None = None
    api_base: str = "/api/v1"


def layer_specs(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The page's layers in drawing order, labels Chinese first with English beside."""
    kinds = sorted(catalogue.values(), key=lambda k: GROUP_ORDER.get(k.group, 9))
    specs = [{"key": k.key, "name_zh": k.name_zh, "name_en": k.name_en, "group": k.group,
              "colour": k.colour, "on": k.group in DEFAULT_ON_GROUPS} for k in kinds]
    specs.insert(0, {"key": UNPLANNED, "name_zh": "未规划", "name_en": "Unplanned", "group": "other",
                     "colour": "#bbbbbb", "on": False})
    specs.append({"key": CONFLICTS, "name_zh": "规划冲突（差异图斑）", "name_en": "Inter-plan conflicts",
                  "group": "conflict", "colour": "#e7298a", "on": False})
    return specs


PARCELS_SPEC = {"key": "parcels", "name_zh": "项目地块（项目库）", "name_en": "Project parcels",
                "group": "parcels", "colour": "#1f4fff", "on": True}
MVT_URL = "/viewer/tiles/{version}/{z}/{x}/{y}.mvt"


def parcels_config(revision: str | None, catalogue: Catalogue) -> dict[str, Any]:
    """Page settings that add the project pool's parcels to every tile (none when there is no pool)."""
    if revision is None:
        return {}
    return {"tiles": f"{MVT_URL}?parcels={revision}", "layers": [*layer_specs(catalogue), dict(PARCELS_SPEC)]}


def proj4_string(crs: CRS) -> str:
    """The PROJ string proj4js needs for the cursor's GK coordinates."""
    with warnings.catch_warnings():
        # PROJ warns that a PROJ string loses metadata (names, datum ensemble): proj4js needs none of it
        warnings.simplefilter("ignore", UserWarning)
        return str(crs.to_proj4())


def page_config(options: PageOptions, catalogue: Catalogue) -> dict[str, Any]:
    """The JSON the page script starts from (no secrets: the key travels as an HttpOnly cookie)."""
    return {
        "version": options.version,
        "versions": [{"version": v.get("version"), "status": v.get("status")} for v in options.versions],
        "layers": layer_specs(catalogue),
        "tiles": MVT_URL,  # one MVT per view cell, every layer
        "bounds": list(options.bounds_4326),
        "workCrs": {"label": crs_label(options.work_crs), "proj4": proj4_string(options.work_crs)},
        "api": options.api_base,
        "login": "/viewer/login",
        "report": "/viewer/reports/{check_id}.html",
        "reports": "/api/v1/checks/{check_id}/report.{format}",
        "identify": "/viewer/identify/{version}",
        "labels": "/viewer/labels/{version}",
        "compare": "/viewer/compare",
        "project": options.project,
        "basemap": options.basemap,
        "checklist": "/api/v1/projects/{code}/checklist.{format}",
        # the national land-use codes (用地用海分类): names in the panels, the workbench's 用地性质 select
        "landUses": [[u.code, u.name_zh, u.name_en] for u in load_land_use_codes().codes.values()],
    }


def build_page(options: PageOptions, catalogue: Catalogue, *, chrome: str = "chrome.html",
               extra: dict[str, Any] | None = None) -> str:
    """The whole HTML page: folium map, measure tool, scale bar, and the viewer script.

    ``chrome`` is the template laid over the map (the meeting viewer's bar and panel, or the
    workbench's form); ``extra`` is merged into the page script's configuration.
    """
    w, s, e, n = options.bounds_4326
    fmap = OfflineMap(location=[(s + n) / 2, (w + e) / 2], zoom_start=11, tiles=None,
                      control_scale=False, max_zoom=20)  # viewer.js adds a metric-only scale bar
    fmap.fit_bounds([[s, w], [n, e]])
    OfflineMeasure(position="topleft", primary_length_unit="meters", secondary_length_unit="kilometers",
                   primary_area_unit="sqmeters", secondary_area_unit="hectares",
                   localization="cn").add_to(fmap)
    root = cast(Figure, fmap.get_root())
    root.header.add_child(Element(render_template("head.html")))
    root.html.add_child(Element(render_template(chrome, **(extra or {}))))
    ViewerInit({**page_config(options, catalogue), **(extra or {})}).add_to(fmap)
    # folium's measure template cites its upstream issue in a JS comment; keep the page URL-free
    return root.render().replace(MEASURE_ISSUE_URL, "leaflet-measure issue 171")
