"""api.routes.blueprints: build a draft, list and read versions, publish (builds/publishing: admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Admin, Reader
from api.routes.common import ServicesDep

router = APIRouter(prefix="/api/v1/blueprints", tags=["一张蓝图 blueprints"])


class BuildRequest(BaseModel):
    layers: list[str] | None = Field(
        default=None, max_length=1000, description="stored layer names; default: every stored layer"
    )
    tolerance_m: float | None = Field(
        default=None, ge=0, le=100, description="sliver/gap tolerance in metres (default from settings)"
    )


@router.post("", status_code=201, summary="合并生成草稿版本 Build a draft")
async def build(services: ServicesDep, who: Admin, body: BuildRequest | None = None) -> dict[str, Any]:
    """Merge the layers into a new draft version: pieces, conflicts (差异图斑), precedence applied."""
    request = body or BuildRequest()
    return await run_in_threadpool(
        services.build, by=who, layer_names=request.layers, tolerance_m=request.tolerance_m
    )


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
