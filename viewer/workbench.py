"""viewer.workbench: the planner's workbench page (/workbench) and the public project list (/public)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from layers.catalogue import Catalogue
from viewer.basemap import Basemap, basemap_config
from viewer.labels import STATUS, zh_en
from viewer.page import PageOptions, build_page, render_template
from viewer.source import ViewerSource

PUBLIC_PAGE_SIZE = 20
PUBLIC_CACHE_SECONDS = 60.0
ACCEPTED_FILES = ".txt,.zip,.dxf,.geojson,.json,.kml,.kmz,.gpkg,.csv"


def _published(source: ViewerSource) -> list[dict[str, Any]]:
    return [v for v in source.versions() if v.get("status") == "published"]


def build_workbench_router(source: ViewerSource, page_dependencies: list[Any], *, catalogue: Catalogue,
                           basemap: Basemap | None = None, max_upload_bytes: int | None = None) -> APIRouter:
    """``/workbench``: upload or draw parcels, screen them through /api/v1, read and save the result."""
    router = APIRouter(tags=["workbench"])

    @router.get("/workbench", response_class=HTMLResponse, dependencies=page_dependencies,
                summary="规划审查工作台 The planner's workbench")
    def workbench() -> HTMLResponse:
        published = _published(source)
        version = str(published[-1]["version"]) if published else None
        options = PageOptions(version=version, versions=published, bounds_4326=source.city_bounds_4326(),
                              work_crs=source.work_crs(), basemap=basemap_config(basemap))
        return HTMLResponse(build_page(options, catalogue, chrome="workbench.html",
                                       extra={"mode": "workbench", "accept": ACCEPTED_FILES,
                                              "maxUploadBytes": max_upload_bytes}))

    return router


class _TimedCache:
    """A small per-page cache: the public list is read by many and changes slowly."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.lock = threading.Lock()
        self.entries: dict[tuple[int, int], tuple[float, Any]] = {}

    def get(self, key: tuple[int, int], make: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self.lock:
            hit = self.entries.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = make()
        with self.lock:
            if len(self.entries) > 256:
                self.entries.clear()
            self.entries[key] = (now, value)
        return value


def build_public_router(source: ViewerSource) -> APIRouter:
    """``/public`` (阳光晒政): no sign-in; code, name, district, status and dates only, paged and cached."""
    router = APIRouter(tags=["public"])
    cache = _TimedCache(PUBLIC_CACHE_SECONDS)

    @router.get("/public", response_class=HTMLResponse, summary="阳光晒政 Public list of projects")
    def public(page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
        offset = (page - 1) * PUBLIC_PAGE_SIZE
        items, total = cache.get((page, PUBLIC_PAGE_SIZE),
                                 lambda: source.public_projects(PUBLIC_PAGE_SIZE, offset))
        rows = [{**p, "status_label": zh_en(STATUS, p.get("status")),
                 "created": str(p.get("created_at") or "")[:10],
                 "updated": str(p.get("updated_at") or "")[:10]}
                for p in items]
        pages = max(1, -(-int(total) // PUBLIC_PAGE_SIZE))
        html = render_template("public.html", rows=rows, page=page, pages=pages, total=total)
        return HTMLResponse(html, headers={"Cache-Control": f"public, max-age={int(PUBLIC_CACHE_SECONDS)}"})

    return router


