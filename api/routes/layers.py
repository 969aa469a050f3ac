"""api.routes.layers: upload, list, read and delete plan layers (admin uploads; every role reads)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Admin, Reader
from api.errors import InvalidRequestError
from api.routes.common import (
    ServicesDep,
    content_kind,
    documented,
    guarded,
    job_accepted,
    validate,
    wants_job,
)
from api.uploads import received_form
from layers.attributes import parse_field_overrides
from runtime import upload_jobs

router = APIRouter(prefix="/api/v1/layers", tags=["规划图层 layers"])

Prefer = Annotated[
    str | None,
    Header(max_length=200, description="`respond-async`: import as a background job whatever the size"),
]


class LayerUpload(BaseModel):
    """A department's layer file and how to read it (multipart/form-data)."""

    model_config = ConfigDict(extra="ignore")

    file: bytes = Field(json_schema_extra={"format": "binary", "type": "string"},
                        description="shapefile zip, GeoJSON, GeoPackage, FlatGeobuf, DXF or 部标 TXT")
    kind: str = Field(min_length=1, max_length=64, description="catalogue kind, e.g. ecological_redline")
    crs: str | None = Field(default=None, max_length=200, description="CRS when the file has none")
    encoding: str | None = Field(default=None, max_length=32, description="attribute encoding, e.g. GBK")
    layer: str | None = Field(default=None, max_length=200, description="layer inside a container")
    name: str | None = Field(default=None, max_length=200, description="stored name (default: from the file)")
    replace: bool = Field(default=False, description="replace a stored draft layer of that name")
    fields: str | None = Field(
        default=None, max_length=2000, description="the file's columns for the kind's attribute fields, "
        "NAME=COLUMN separated by commas or new lines, e.g. RJL=容积率,JZMD=建筑密度 (控规地块, 区域评估)")


@router.post(
    "",
    status_code=201,
    summary="上传规划图层 Upload a plan layer",
    response_class=JSONResponse,
    responses={
        201: {"description": "imported: the stored layer's summary (small files)"},
        202: {"description": "a large file: stored and queued as an import job (see /api/v1/jobs/{job_id})"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": documented(LayerUpload)}}}},
)
async def upload_layer(
    request: Request, services: ServicesDep, who: Admin, prefer: Prefer = None
) -> Response:
    """Read the file (repairs reported), reproject to the working CRS and store it.

    The body is streamed to the data directory as it arrives, the plan-layer size limit enforced on the
    way (413 naming it). A file above ``BLUEPRINT_LAYER_JOB_BYTES`` (or any, with ``Prefer:
    respond-async``) is imported by a durable job: 202 and ``Location: /api/v1/jobs/{job_id}``, whose
    progress says how many features are stored. A file that cannot be read, is too large or looks
    hostile is rejected before anything is stored.
    """
    if content_kind(request) != "multipart":
        raise InvalidRequestError(
            "send the layer as multipart/form-data (field 'file') 请以 multipart 上传图层文件")
    streamed = received_form(request, services.settings.data_dir, services.layer_limits)
    async with streamed as (fields, received):
        form = validate(LayerUpload, {**fields, "file": b""})
        options = {"kind": form.kind, "crs": form.crs, "encoding": form.encoding, "layer": form.layer,
                   "name": form.name, "replace": form.replace,
                   "fields": parse_field_overrides([form.fields] if form.fields else None) or None}
        if wants_job(prefer) or received.size > services.settings.layer_job_bytes:
            queue = functools.partial(upload_jobs.queue_layer_import, services, received.path, by=who,
                                      **options)
            return job_accepted(await run_in_threadpool(queue))
        store = functools.partial(services.upload_layer, received.path, by=who, **options)
        # malformed geometry makes GEOS/pandas raise while reading: a 422, like parcels, never a 500
        summary = await run_in_threadpool(guarded, store, "the layer file")
    return JSONResponse(summary, status_code=201)


@router.get("", summary="图层列表 List stored layers")
def list_layers(services: ServicesDep, who: Reader) -> list[dict[str, Any]]:
    return services.stores.layers.list()


@router.get("/{name}", summary="图层详情 One stored layer")
def get_layer(name: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    """Metadata and repairs; the features themselves are served by /ogc/collections/layer-{name}."""
    return services.stores.layers.summary(name)


@router.delete("/{name}", status_code=204, summary="删除草稿图层 Delete a draft layer")
def delete_layer(name: str, services: ServicesDep, who: Admin) -> Response:
    services.delete_layer(name, by=who)
    return Response(status_code=204)
