"""api.app: ``create_app(settings)``, the FastAPI factory (nothing is built at import)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import DEV_KEYS, require
from api.errors import add_exception_handlers, error_body
from api.services import Services
from api.settings import Settings, get_settings
from layers.model import Limits

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


async def _too_large(send: Send, detail: str) -> None:
    body = json.dumps(error_body("payload_too_large", detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service: open (and migrate) the database, wire the stores, mount every router."""
    from api import ogc
    from api.routes import (
        admin,
        blueprints,
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
        if settings.worker_in_process:
            services.start_worker()  # queued jobs, and jobs whose worker died, are taken up
        yield
        services.stop_worker()  # a running job finishes and is stored
        services.engine.dispose()

    app = FastAPI(title="一张蓝图 One Blueprint", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    app.state.settings = settings
    add_exception_handlers(app)
    submission = body_cap(settings.submission_limits("api"))
    # plan layers come through one route, with their own (far larger) limit; everything else is a submission
    app.add_middleware(BodyLimit, max_bytes=submission.max_bytes, detail=submission.detail,
                       routes={("POST", "/api/v1/layers"): body_cap(settings.layer_limits("api"))})
    for module in (health, meta, layers, blueprints, checks, projects, opinions, reviews, events, admin):
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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _mount_viewer(app: FastAPI, services: Services, settings: Settings) -> None:
    """The review-meeting viewer at /viewer, the workbench, the public list and the report downloads,
    reading through the ViewerSource port."""
    try:
        from api.viewer_source import StoreViewerSource
        from viewer.report import ReportInfo
        from viewer.report_routes import build_report_router
        from viewer.routes import build_router, sign_in_dependencies
        from viewer.workbench import build_public_router, build_workbench_router
    except ImportError as exc:  # the viewer package is optional for the API
        log.warning("viewer not mounted: %s", exc)
        return
    source = StoreViewerSource(services)
    dev_key = next(k for k, role in DEV_KEYS.items() if role == "reviewer") if settings.dev_mode else None
    info = _report_info(services, settings, ReportInfo)
    read = require("read")
    app.include_router(
        build_router(
            source, read, tile_url=settings.tile_url, dev_key=dev_key, catalogue=services.catalogue,
            report_info=info, tiles_dir=settings.data_dir / "tiles",
        )
    )
    app.include_router(
        build_workbench_router(source, sign_in_dependencies(read), catalogue=services.catalogue,
                               tile_url=settings.tile_url, max_upload_bytes=settings.max_upload_bytes)
    )
    app.include_router(build_public_router(source))
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
