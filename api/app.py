"""api.app: ``create_app(settings)``, the FastAPI factory (nothing is built at import)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import require
from api.errors import add_exception_handlers, error_body
from api.ratelimit import PublicPathLimit, RateLimits
from api.tempfiles import sweep_upload_dirs
from api.uploads import uploads_root
from layers.model import Limits
from runtime.keys import DEV_KEYS
from runtime.services import Services
from runtime.settings import Settings, get_settings

log = logging.getLogger("api.app")

DESCRIPTION = """
**一张蓝图 One Blueprint**: plan layers merged into one versioned blueprint, and construction project
parcels screened against it.

Authenticate with an API key: `X-API-Key: <key>`, `Authorization: Bearer <key>`, HTTP Basic with the key
as password (QGIS, GDAL), or the `blueprint_key` cookie (the viewer's sign-in).
Roles: `planner`, `reviewer`, `admin`, `approval_system`, `department`.
Errors are always `{"code": ..., "detail": ...}`.
"""

# multipart framing and form fields on top of the file itself
BODY_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class BodyCap:
    """The largest request body a route takes, and the error detail that refuses a larger one."""

    max_bytes: int
    detail: str


def body_cap(limits: Limits) -> BodyCap:
    """The body cap for files read with ``limits``: the file limit plus the form framing allowance."""
    detail = limits.exceeded("max_bytes", "request body too large")
    return BodyCap(limits.max_bytes + BODY_OVERHEAD_BYTES, detail)


class BodyLimit:
    """Refuse request bodies larger than the route's limit, before they are parsed or spooled to disk.

    ``routes`` maps (method, path) to its own cap (a plan-layer upload may be far larger than a
    submission); every other request gets ``max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, detail: str | None = None,
                 routes: Mapping[tuple[str, str], BodyCap] | None = None) -> None:
        self.app = app
        self.default = BodyCap(max_bytes, detail or f"request body larger than {max_bytes} bytes")
        self.routes = dict(routes or {})

    def cap(self, scope: Scope) -> BodyCap:
        path = str(scope.get("path", "")).rstrip("/") or "/"
        return self.routes.get((str(scope.get("method", "")).upper(), path), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap.max_bytes:
            await _too_large(send, cap.detail)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap.max_bytes:
                    # an HTTPException passes FastAPI's body parsing untouched and reaches our handler
                    raise StarletteHTTPException(413, cap.detail)
            return message

        await self.app(scope, limited, send)


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class NoControlCharacters:
    """Refuse NUL and other control characters in the path (404) and the query (422) before any route:
    SQLite's LIKE stops at a NUL (``q=%00`` matched every project), PostgreSQL refuses it (a 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
            if CONTROL_CHARACTERS.search(scope.get("path", "")):
                await _error(send, 404, "not_found", "no such resource")
                return
            if CONTROL_CHARACTERS.search(query):
                await _error(send, 422, "invalid_request",
                             "query parameters may not contain control characters 查询条件含非法字符")
                return
        await self.app(scope, receive, send)


async def _too_large(send: Send, detail: str) -> None:
    await _error(send, 413, "payload_too_large", detail, close=True)


async def _error(send: Send, status: int, code: str, detail: str, close: bool = False) -> None:
    body = json.dumps(error_body(code, detail)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service: open (and migrate) the database, wire the stores, mount every router."""
    from api import ogc
    from api.routes import (
        admin,
        blueprints,
        checklist,
        checks,
        events,
        health,
        layers,
        meta,
        opinions,
        projects,
        reviews,
    )
    from api.routes.common import EXTRA_SCHEMAS

    settings = settings or get_settings()
    services = Services.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # uploads a killed server left behind (old ones in the system temp dir, streamed ones in the
        # data dir), and job inputs no job will read again
        sweep_upload_dirs()
        sweep_upload_dirs(uploads_root(settings.data_dir))
        services.jobs.sweep_inputs()
        services.jobs.release_dead_local()  # jobs the killed server was running resume at once
        if settings.worker_in_process:
            services.start_worker()  # queued jobs, and jobs whose worker died, are taken up
        yield
        services.stop_worker()  # a running job finishes and is stored
        services.engine.dispose()

    app = FastAPI(title="一张蓝图 One Blueprint", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    app.state.rate_limits = RateLimits(settings)  # per app: api.auth and PublicPathLimit share it
    app.state.settings = settings
    add_exception_handlers(app)
    submission = body_cap(settings.submission_limits("api"))
    # plan layers come through one route, with their own (far larger) limit; everything else is a submission
    app.add_middleware(BodyLimit, max_bytes=submission.max_bytes, detail=submission.detail,
                       routes={("POST", "/api/v1/layers"): body_cap(settings.layer_limits("api"))})
    app.add_middleware(NoControlCharacters)
    app.add_middleware(PublicPathLimit, limits=app.state.rate_limits)
    for module in (health, meta, layers, blueprints, checks, projects, checklist, opinions, reviews, events,
                   admin):
        app.include_router(module.router)
    app.include_router(ogc.router)
    _mount_viewer(app, services, settings)

    def openapi() -> dict[str, Any]:
        # routes that take JSON *or* multipart document their bodies by hand; add those schemas
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(EXTRA_SCHEMAS)
            document_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


ERROR_BODY = {
    "title": "ErrorBody",
    "type": "object",
    "description": "Every 4xx and 5xx answer: a stable code, a readable detail, and for people a Chinese "
    "message with what to do",
    "properties": {
        "code": {"type": "string", "examples": ["invalid_request"]},
        "detail": {"type": "string"},
        "message_zh": {"type": "string"},
    },
    "required": ["code", "detail"],
    "additionalProperties": False,
}
ERROR_STATUSES = {
    "400": "bad request", "401": "no or unknown API key", "403": "the role may not do this",
    "404": "not found", "409": "conflicts with the stored state", "413": "request body too large",
    "422": "invalid input (validation, unreadable file, CRS…)", "429": "over a rate limit (Retry-After)",
}


def document_errors(schema: dict[str, Any]) -> None:
    """Document the real error body: FastAPI's ``HTTPValidationError`` (never sent) is replaced by
    ``ErrorBody`` and every operation lists ``4XX`` and the statuses it can answer with."""
    schemas = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorBody"] = ERROR_BODY
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, description in ERROR_STATUSES.items():
                if status in responses or status in ("401", "403", "429", "422", "404", "400"):
                    responses[status] = {"description": description, "content": content}
            responses["4XX"] = {"description": "any other client error", "content": content}


def _mount_viewer(app: FastAPI, services: Services, settings: Settings) -> None:
    """The review-meeting viewer at /viewer, the workbench, the public list and the report downloads,
    reading through the ViewerSource port."""
    try:
        from viewer.basemap import open_basemap
        from viewer.report import ReportInfo
        from viewer.report_routes import build_report_router
        from viewer.routes import build_router, sign_in_dependencies
        from viewer.store_source import StoreViewerSource, register_tile_jobs
        from viewer.workbench import build_public_router, build_workbench_router
    except ImportError as exc:  # the viewer package is optional for the API
        log.warning("viewer not mounted: %s", exc)
        return
    source = StoreViewerSource(services)
    basemap = open_basemap(settings.basemap)  # a wrong path stops the start-up, naming the setting
    dev_key = next(k for k, role in DEV_KEYS.items() if role == "reviewer") if settings.dev_mode else None
    info = _report_info(services, settings, ReportInfo)
    app.state.report_info = info  # the checklist documents name project types as the reports do
    read = require("read")
    app.include_router(
        build_router(
            source, read, basemap=basemap, dev_key=dev_key, catalogue=services.catalogue,
            report_info=info, tiles_dir=settings.data_dir / "tiles",
        )
    )
    app.include_router(
        build_workbench_router(source, sign_in_dependencies(read), catalogue=services.catalogue,
                               basemap=basemap, max_upload_bytes=settings.max_upload_bytes)
    )
    app.include_router(build_public_router(source))
    register_tile_jobs(services, source)
    app.include_router(build_report_router(source, read, services.catalogue, info))


def _report_info(services: Services, settings: Settings, make: Any) -> Any:
    """What every report states about the rules in force: the file and its sha256, the type names."""
    from importlib import resources

    if settings.rules_file is not None:
        name, data = Path(settings.rules_file).name, Path(settings.rules_file).read_bytes()
    else:
        name = "checks/rules.toml（内置 built-in）"
        data = resources.files("checks").joinpath("rules.toml").read_bytes()
    types = services.rules.project_types
    # a finer type is named with its group, so a report shows both levels: 旅游设施（公共服务设施项目）
    names = {t.key: (t.name_zh, t.name_en) if t.is_group else
             (f"{t.name_zh}（{types[t.group_key].name_zh}）", f"{t.name_en} ({types[t.group_key].name_en})")
             for t in types.values()}
    return make(project_types=names, rules_file=name, rules_sha256=hashlib.sha256(data).hexdigest())
