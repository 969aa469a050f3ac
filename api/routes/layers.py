"""api.routes.layers: upload, list, read and delete plan layers (admin uploads; every role reads)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from api.auth import Admin, Reader
from api.routes.common import ServicesDep, TempDir, guarded, save_upload
from layers.attributes import parse_field_overrides

router = APIRouter(prefix="/api/v1/layers", tags=["规划图层 layers"])


@router.post("", status_code=201, summary="上传规划图层 Upload a plan layer")
async def upload_layer(
    services: ServicesDep,
    who: Admin,
    file: Annotated[UploadFile, File(description="shapefile zip, GeoJSON, GeoPackage, DXF or 部标 TXT")],
    kind: Annotated[
        str, Form(min_length=1, max_length=64, description="catalogue kind, e.g. ecological_redline")
    ],
    crs: Annotated[str | None, Form(max_length=200, description="CRS when the file has none")] = None,
    encoding: Annotated[str | None, Form(max_length=32, description="attribute encoding, e.g. GBK")] = None,
    layer: Annotated[str | None, Form(max_length=200, description="layer inside a container")] = None,
    name: Annotated[
        str | None, Form(max_length=200, description="stored name (default: from the file)")
    ] = None,
    replace: Annotated[bool, Form(description="replace a stored draft layer of that name")] = False,
    fields: Annotated[str | None, Form(
        max_length=2000, description="the file's columns for the kind's attribute fields, NAME=COLUMN "
        "separated by commas or new lines, e.g. RJL=容积率,JZMD=建筑密度 (控规地块, 区域评估)")] = None,
) -> dict[str, Any]:
    """Read the file (repairs reported), reproject to the working CRS and store it.

    A file that cannot be read, is too large or looks hostile is rejected before anything is stored.
    """
    with TempDir() as tmp:
        path = await save_upload(file, tmp, services.layer_limits)
        store = functools.partial(
            services.upload_layer,
            path,
            kind,
            by=who,
            crs=crs or None,
            encoding=encoding or None,
            layer=layer or None,
            name=name or None,
            replace=replace,
            fields=parse_field_overrides([fields] if fields else None) or None,
        )
        # malformed geometry makes GEOS/pandas raise while reading: a 422, like parcels, never a 500
        return await run_in_threadpool(guarded, store, "the layer file")


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
