"""api.routes.blueprints: build a draft, list and read versions, publish (builds/publishing: admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Admin, Reader
from api.routes.common import ServicesDep, job_accepted, wants_job
from api.routes.layers import Prefer
from runtime import upload_jobs

router = APIRouter(prefix="/api/v1/blueprints", tags=["一张蓝图 blueprints"])


class BuildRequest(BaseModel):
    layers: list[str] | None = Field(
        default=None, max_length=1000, description="stored layer names; default: every stored layer"
    )
    tolerance_m: float | None = Field(
        default=None, ge=0, le=100, description="sliver/gap tolerance in metres (default from settings)"
    )


@router.post(
    "",
    status_code=201,
    summary="合并生成草稿版本 Build a draft",
    response_class=JSONResponse,
    responses={202: {"description": "a large build: queued as a background job (see /api/v1/jobs/{job_id})"}},
)
async def build(
    services: ServicesDep, who: Admin, body: BuildRequest | None = None, prefer: Prefer = None
) -> JSONResponse:
    """Merge the layers into a new draft version: pieces, conflicts (差异图斑), precedence applied.

    Layers holding more than ``BLUEPRINT_BUILD_JOB_FEATURES`` features in all (or ``Prefer:
    respond-async``) are merged by a durable job: 202 and ``Location: /api/v1/jobs/{job_id}``."""
    request = body or BuildRequest()
    options = {"layer_names": request.layers, "tolerance_m": request.tolerance_m}
    if wants_job(prefer) or await run_in_threadpool(upload_jobs.build_is_large, services, request.layers):
        return job_accepted(await run_in_threadpool(upload_jobs.queue_build, services, by=who, **options))
    return JSONResponse(await run_in_threadpool(services.build, by=who, **options), status_code=201)


@router.get("", summary="版本列表 List versions")
def list_versions(services: ServicesDep, who: Reader) -> list[dict[str, Any]]:
    return services.stores.blueprints.versions()


@router.get("/{version}", summary="版本详情 One version: metadata, summary by kind, conflicts")
def get_version(version: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    """Geometry of pieces and conflicts: /ogc/collections/blueprint-{version}-pieces and -conflicts."""
    return services.blueprint_detail(version)


@router.post("/{version}/publish", summary="发布 Publish a draft")
def publish(version: str, services: ServicesDep, who: Admin) -> dict[str, Any]:
    """Publishing is atomic and final: a published version never changes."""
    return services.publish(version, by=who)
