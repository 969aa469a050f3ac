"""viewer.routes: the /viewer router (page, login, static assets, tiles, compare, reports)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from layers.catalogue import Catalogue, load_catalogue
from viewer import compare as compare_mod
from viewer import report as report_mod
from viewer.archive import Archives
from viewer.basemap import Basemap, basemap_config
from viewer.boundary import boundary_labels
from viewer.lru import LRU
from viewer.page import PageOptions, build_page, parcels_config, render_template
from viewer.report import ReportInfo
from viewer.source import ViewerSource
from viewer.tilegrid import valid_tile
from viewer.tiles import IDENTIFY_MAX_RADIUS_M, TileService

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "blueprint_key"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml",
                ".map": "application/json"}
TILE_HEADERS = {"Cache-Control": "private, max-age=86400"}
MVT_TYPE = "application/vnd.mapbox-vector-tile"
# a published version never changes: its tiles may be kept for a year without asking again
IMMUTABLE = "private, max-age=31536000, immutable"
LABELS_TTL = 3600  # seconds the boundary labels of a published version are kept
DRAFT = "private, no-cache"  # drafts: revalidate every time (the ETag makes that a 304)


def with_parcels(body: bytes, parcels: bytes) -> bytes:
    """The gzipped tile ``body`` with the raw MVT ``parcels`` layer added (MVT messages concatenate)."""
    if not parcels:
        return body
    return gzip.compress((gzip.decompress(body) if body else b"") + parcels, compresslevel=6, mtime=0)


def mvt_response(request: Request, body: bytes, published: bool) -> Response:
    """The gzipped MVT ``body`` with ETag and caching headers; 304 when the browser has it already."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if published else DRAFT, "Vary": "Accept-Encoding"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if body and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
    elif body:
        body = gzip.decompress(body)  # a client that cannot take gzip gets the plain tile
    return Response(body, media_type=MVT_TYPE, headers=headers)


def basemap_response(request: Request, body: bytes, media_type: str) -> Response:
    """A basemap tile with an ETag; immutable, since its URL carries the file's revision (``?v=``)."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if body[:2] == b"\x1f\x8b":  # a gzipped vector tile, as MBTiles and PMTiles usually store them
        headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
        else:
            body = gzip.decompress(body)
    return Response(body, media_type=media_type, headers=headers)


def _static_file(path: str) -> FileResponse:
    """A file under viewer/static; anything outside it (``..``, absolute paths), a NUL byte or a name
    the file system refuses (too long) is a 404."""
    try:
        target = (STATIC_DIR / path).resolve()
        found = "\x00" not in path and target.is_file()
    except (OSError, ValueError):
        found = False
    if not found or STATIC_DIR not in target.parents or target.suffix not in STATIC_TYPES:
        raise HTTPException(status_code=404, detail="no such asset")
    return FileResponse(target, media_type=STATIC_TYPES[target.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


def _sign_in_first(request: Request) -> None:
    """HTML pages: a browser with no key at all goes to the sign-in form, not to a JSON 401."""
    headers = request.headers
    if not (request.cookies.get(COOKIE) or headers.get("x-api-key") or headers.get("authorization")):
        target = "/viewer/login" + ("?next=/workbench" if request.url.path == "/workbench" else "")
        raise HTTPException(status_code=303, detail="sign in first 请先登录", headers={"Location": target})


# where the sign-in form may send the browser back to: this service's pages only, never another host
NEXT_PAGES = ("/viewer", "/workbench")


def _next_page(value: str | None) -> str:
    return value if value in NEXT_PAGES else "/viewer"


def sign_in_dependencies(auth_dependency: Callable[..., Any]) -> list[Any]:
    """Page routes: redirect a browser with no key to the sign-in form, then authenticate (in this order)."""
    return [Depends(_sign_in_first), Depends(auth_dependency)]


# keys are printable ASCII; anything else cannot go into a cookie header
PRINTABLE_ASCII = r"^[\x21-\x7e]+$"


def _project_code(source: ViewerSource, q: str | None) -> str | None:
    """A deep link may name a project by code or by (part of) its name: resolve it to one code."""
    if not q:
        return None
    matches = source.search_projects(q, limit=2)
    codes = [str(m["code"]) for m in matches]
    if q in codes or not codes:
        return q  # an exact code, or nothing known: the page says "not found" itself
    return codes[0] if len(codes) == 1 else q


def _default_version(source: ViewerSource) -> str | None:
    """The latest published version, else the newest draft (so a fresh install still shows something)."""
    latest = source.latest_version()
    if latest:
        return latest
    versions = source.versions()
    return str(versions[-1]["version"]) if versions else None


def _known_version(source: ViewerSource, version: str) -> str:
    if version not in {str(v.get("version")) for v in source.versions()}:
        raise HTTPException(status_code=404, detail=f"unknown blueprint version {version}")
    return version


def build_router(source: ViewerSource, auth_dependency: Callable[..., Any], *, basemap: Basemap | None = None,
                 dev_key: str | None = None, catalogue: Catalogue | None = None,
                 report_info: ReportInfo | None = None, tiles_dir: Path | None = None) -> APIRouter:
    """The viewer's routes under /viewer.

    Everything but the static assets and the login form depends on ``auth_dependency`` (which
    must accept the ``blueprint_key`` cookie the login form sets). ``dev_key`` is shown pre-filled
    in the login form and must only be passed in dev mode. ``basemap``: the optional basemap
    (:func:`viewer.basemap.open_basemap`); a local file's tiles are served at ``/viewer/basemap/{z}/{x}/{y}``.
    ``tiles_dir``: where the MVT archives of published versions are kept (none: tiles on demand only).
    """
    catalogue = catalogue or load_catalogue()
    tiles = TileService(source, {k.key: k.group for k in catalogue.values()})
    archives = Archives(tiles_dir, source, tiles)
    router = APIRouter(prefix="/viewer", tags=["viewer"])
    auth = [Depends(auth_dependency)]
    pages = sign_in_dependencies(auth_dependency)

    @router.get("/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        """Vendored Leaflet, plugins, proj4js and the viewer's own script and style."""
        return _static_file(path)

    @router.get("/login", response_class=HTMLResponse, summary="Viewer sign-in form")
    def login_form(next: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
        return HTMLResponse(render_template("login.html", dev_key=dev_key, next=_next_page(next)))

    @router.post("/login", summary="Set the viewer's key cookie")
    def login(
        key: Annotated[str, Form(min_length=1, max_length=512, pattern=PRINTABLE_ASCII)],
        next: Annotated[str | None, Form(max_length=64)] = None,
    ) -> RedirectResponse:
        # the key is checked by auth_dependency on the next request, like any API call
        response = RedirectResponse(_next_page(next), status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/")
        return response

    @router.post("/logout", summary="Clear the viewer's key cookie")
    def logout() -> RedirectResponse:
        response = RedirectResponse("/viewer/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("", response_class=HTMLResponse, dependencies=pages, summary="The review-meeting map")
    def page(version: str | None = None, project: str | None = None) -> HTMLResponse:
        """Open on the whole city with the 三区三线 shown; ``project`` flies straight to a project."""
        chosen = _known_version(source, version) if version else _default_version(source)
        options = PageOptions(version=chosen, versions=source.versions(),
                              bounds_4326=source.city_bounds_4326(), work_crs=source.work_crs(),
                              basemap=basemap_config(basemap), project=_project_code(source, project))
        extra = parcels_config(tiles.parcels_revision(), catalogue)
        return HTMLResponse(build_page(options, catalogue, extra=extra))

    label_cache = LRU(8)

    @router.get("/labels/{version}", dependencies=auth, summary="Names of the boundary layer's areas")
    def labels(request: Request, version: str) -> Response:
        """The named areas of the version's boundary layer (districts, or the city): a label point each and
        their outlines, EPSG:4326, largest first. Empty when the source has no boundary layer to read."""
        _known_version(source, version)
        read = getattr(source, "boundary", None)  # optional in ViewerSource
        published = tiles.status(version) == "published"
        # the names come from the stored boundary layer, which an administrator may replace: kept an hour
        body = label_cache.get(version, lambda: json.dumps(
            boundary_labels(read(version) if read else None), ensure_ascii=False).encode("utf-8"),
            LABELS_TTL if published else tiles.draft_ttl)
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        headers = {"ETag": etag, "Cache-Control": f"private, max-age={LABELS_TTL}" if published else DRAFT}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.get("/basemap/{z}/{x}/{y}", dependencies=auth, summary="One tile of the local basemap")
    def basemap_tile(request: Request, z: int, x: int, y: int) -> Response:
        """A tile of the basemap file ``BLUEPRINT_BASEMAP`` names (MBTiles or PMTiles, raster or vector),
        as stored; 404 where the file has no tile (or no local basemap is set)."""
        body = basemap.tile(z, x, y) if basemap is not None and valid_tile(z, x, y) else None
        if body is None:
            raise HTTPException(status_code=404, detail=f"no basemap tile {z}/{x}/{y}")
        assert basemap is not None
        return basemap_response(request, body, basemap.media_type)

    @router.get("/tiles/{version}/{z}/{x}/{y}.mvt", dependencies=auth, summary="One MVT tile, every layer")
    def mvt_tile(request: Request, version: str, z: int, x: int, y: int,
                 parcels: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        """Every layer of ``version`` in one Mapbox Vector Tile: the catalogue kinds, ``unplanned`` and
        ``conflicts`` as named layers. Published versions come from their archive (immutable).
        ``?parcels=REV`` adds the project pool's ``parcels`` layer (REV: the revision the page was given)."""
        if not valid_tile(z, x, y):
            raise HTTPException(status_code=404, detail=f"no such tile: {z}/{x}/{y}")
        try:
            body = archives.tile(version, z, x, y)
            if body is None:
                body = tiles.mvt(version, z, x, y)
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=f"no such tile: {exc}") from None
        published = tiles.status(version) == "published"
        if parcels is not None:
            body = with_parcels(body, tiles.parcels_mvt(z, x, y))
            published = published and parcels == tiles.parcels_revision()  # an old revision: revalidate
        return mvt_response(request, body, published)

    @router.get("/tiles/{version}/{layer}/{z}/{x}/{y}.{fmt}", dependencies=auth, summary="A vector tile")
    def tile(version: str, layer: str, z: int, x: int, y: int, fmt: str) -> Response:
        """GeoJSON tile of one layer (a catalogue kind, ``unplanned`` or ``conflicts``), EPSG:4326."""
        if fmt != "geojson":  # MVT: one tile for every layer, /viewer/tiles/{version}/{z}/{x}/{y}.mvt
            raise HTTPException(status_code=404, detail="per-layer tiles are .geojson only")
        try:
            body = tiles.tile(version, layer, z, x, y)
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=f"no such tile: {exc}") from None
        return Response(body, media_type="application/geo+json", headers=TILE_HEADERS)

    @router.get("/identify/{version}", dependencies=auth, summary="What the blueprint says at a point")
    def identify(version: str, lon: Annotated[float, Query(ge=-180, le=180)],
                 lat: Annotated[float, Query(ge=-90, le=90)],
                 r: Annotated[float, Query(ge=0, le=IDENTIFY_MAX_RADIUS_M)] = 0.0) -> dict[str, Any]:
        """The pieces under (lon, lat) in EPSG:4326: controlling kind, effective kinds, source features;
        and the conflicts there: the two plans, their layers, the area and how precedence resolved it.
        ``r`` (metres): also small conflicts within that distance, which the map draws as markers."""
        try:
            return {"version": version, "lon": lon, "lat": lat, "pieces": tiles.identify(version, lon, lat),
                    "conflicts": tiles.identify_conflicts(version, lon, lat, r)}
        except KeyError:
            raise HTTPException(status_code=404, detail=f"unknown blueprint version {version}") from None

    @router.get("/compare", response_class=HTMLResponse, dependencies=pages, summary="Compare two versions")
    def compare(a: Annotated[str | None, Query()] = None,
                b: Annotated[str | None, Query()] = None) -> HTMLResponse:
        """Added / removed area per kind between blueprint versions ``a`` (older) and ``b`` (newer)."""
        versions = [str(v.get("version")) for v in source.versions()]
        if not a or not b:
            return HTMLResponse(render_template("compare.html", versions=versions, a=a, b=b, result=None))
        diff = compare_mod.compare_versions(source, _known_version(source, a), _known_version(source, b),
                                            catalogue)
        return HTMLResponse(compare_mod.render_compare(diff, versions, source.city_bounds_4326()))

    def _report(check_id: str) -> str:
        try:
            return report_mod.report_html(source, check_id, catalogue, report_info)
        except KeyError:
            raise HTTPException(status_code=404, detail=f"unknown check {check_id}") from None

    @router.get("/reports/{check_id}.html", response_class=HTMLResponse, dependencies=pages,
                summary="Printable review report of one check")
    def report_html(check_id: str) -> HTMLResponse:
        return HTMLResponse(_report(check_id))

    @router.get("/reports/{check_id}.pdf", dependencies=auth, summary="The review report as PDF")
    def report_pdf(check_id: str) -> Response:
        try:
            pdf = report_mod.html_to_pdf(_report(check_id))
        except report_mod.ReportUnavailable as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="report-{check_id}.pdf"'})

    return router
