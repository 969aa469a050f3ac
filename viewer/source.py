"""viewer.source: what the review-meeting viewer needs from storage (implemented by the API)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import geopandas as gpd
from pyproj import CRS


@runtime_checkable
class ViewerSource(Protocol):
    """Read-only storage port of the viewer; the API wires it over its stores.

    Every method is synchronous (routes are plain ``def``, run in FastAPI's threadpool) and must be
    safe to call from several threads. Unknown ids return ``None`` / raise ``KeyError`` as stated;
    the viewer turns them into 404s. Geometries stay in the working CRS (:meth:`work_crs`), except
    where a method says EPSG:4326.

    The page's JavaScript does not go through this port for projects: it calls the JSON API
    (see :data:`API_CONTRACT`) with the ``blueprint_key`` cookie.

    Optional: ``project_parcels() -> GeoDataFrame`` (``project_code``, ``parcel_id``, ``name``, ``area_m2``,
    working CRS) — every project's current parcels; when present the map's tiles carry them as the
    ``parcels`` layer (see ``viewer/README.md``, *Tiles*).
    Optional: ``check_created_at(check_id) -> str | None`` — when the check was stored (ISO 8601); the
    reports print it as 检测时间 beside the time they are generated.
    Optional: ``boundary(version) -> GeoDataFrame | None`` — the features of the boundary layer the version
    was built from (working CRS, with their attributes); their names (``XZQMC``, ``区县``, ``名称``…) label
    the map at ``/viewer/labels/{version}``.
    """

    def work_crs(self) -> CRS:
        """The projected working CRS of the blueprints (e.g. EPSG:4548)."""
        ...

    def versions(self) -> list[dict[str, Any]]:
        """Every blueprint version, oldest first, each at least ``{"version", "status"}``
        (``status`` is ``"draft"`` or ``"published"``; more keys of ``Blueprint.summary()`` welcome)."""
        ...

    def latest_version(self) -> str | None:
        """The latest *published* version, ``None`` when nothing is published yet."""
        ...

    def pieces(self, version: str) -> gpd.GeoDataFrame:
        """The pieces of ``version`` (columns per ``blueprint.model``), in the working CRS.

        Raises ``KeyError`` for an unknown version. Published versions are immutable, so the viewer
        caches what it derives from them (tiles); a draft is re-read whenever it is asked for.
        """
        ...

    def conflicts(self, version: str) -> gpd.GeoDataFrame:
        """The conflicts (差异图斑) of ``version`` (columns per ``blueprint.model``).

        Raises ``KeyError`` for an unknown version.
        """
        ...

    def city_bounds_4326(self) -> tuple[float, float, float, float]:
        """The whole city's extent as (min_lon, min_lat, max_lon, max_lat); the page opens on it."""
        ...

    def search_projects(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        """Projects whose code or name contains ``q``, each ``{"code", "name", "project_type", "status"}``.

        Resolves the page's deep link ``/viewer?project=<code or name>`` (the map side of "locate a
        project"); the live search box calls ``/api/v1/projects?q=`` instead.
        """
        ...

    def public_projects(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The 阳光晒政 public list: ``({"code", "name", "district", "status", "created_at",
        "updated_at"}, ...)`` by code, and the total. Never geometry or applicant contact data."""
        ...

    def check(self, check_id: str) -> dict[str, Any] | None:
        """The stored check result (the screening result contract, unchanged), ``None`` if unknown."""
        ...

    def project_for_check(self, check_id: str) -> dict[str, Any] | None:
        """The project a check was run for, ``None`` for a check made outside the project pool.

        Shape: ``{"code", "name", "project_type", "applicant", "district", "status",
        "parcels": GeoJSON FeatureCollection in EPSG:4326 (optional),
        "reviews": [{"decided_by", "decided_at", "decision", "conditions", "reasons"}] (joint-review
        decisions recorded against this check, oldest first)}``.
        """
        ...


# The JSON API the page's JavaScript calls (provided by api/, authenticated by the `blueprint_key`
# cookie that /viewer/login sets). The page tolerates a bare list or {"items": [...]} for searches.
API_CONTRACT: dict[str, str] = {
    "GET /api/v1/projects?q=TEXT": "list of {code, name, project_type, district, status}",
    "GET /api/v1/projects/{code}": "{code, name, project_type, applicant, district, status, "
                                   "latest_check_id | checks: [{check_id, verdict, ...}], reviews: [...]}",
    "GET /api/v1/projects/{code}/location": "{centroid: [lon, lat], bbox: [w, s, e, n], "
                                            "geometry: GeoJSON geometry or FeatureCollection} (EPSG:4326)",
    "GET /api/v1/checks/{check_id}": "the stored screening result contract",
}
