"""api.routes.common: shared dependencies, request bodies (JSON or multipart) and documented schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.errors import ShapelyError
from starlette.concurrency import run_in_threadpool

from api.errors import InvalidRequestError, describe_validation
from api.uploads import ReceivedFile, received_form, refuse_loose_shapefile_part, safe_filename
from layers.crs import parse_crs
from layers.errors import OneBlueprintError
from layers.geojson_rows import parcel_rows_from_geojson
from layers.ingest import parcels_from_geojson, read_parcels
from layers.model import ParcelSet
from runtime.services import Services

__all__ = ["refuse_loose_shapefile_part", "safe_filename"]  # re-exported: the routes' one cleaning rule


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

Model = TypeVar("Model", bound=BaseModel)

# Body schemas that routes document by hand (a route taking JSON *or* multipart cannot declare its
# body as a parameter); create_app merges them into components/schemas.
EXTRA_SCHEMAS: dict[str, Any] = {}
REF = "#/components/schemas/{model}"


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """A ``$ref`` to ``model`` in components/schemas, registering it (and its sub-models)."""
    schema = model.model_json_schema(ref_template=REF)
    EXTRA_SCHEMAS.update(schema.pop("$defs", {}))
    EXTRA_SCHEMAS[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def json_or_multipart(json_model: type[BaseModel], form_model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a body given as JSON or as a multipart upload."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": documented(json_model)},
                "multipart/form-data": {"schema": documented(form_model)},
            },
        }
    }


# ----------------------------------------------------------------------------- GeoJSON (EPSG:4326)

Position = Annotated[list[float], Field(min_length=2, max_length=3)]
Ring = Annotated[list[Position], Field(min_length=4)]


class PolygonGeometry(BaseModel):
    type: Literal["Polygon"]
    coordinates: Annotated[list[Ring], Field(min_length=1)]


class MultiPolygonGeometry(BaseModel):
    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[Annotated[list[Ring], Field(min_length=1)]], Field(min_length=1)]


class ParcelFeature(BaseModel):
    """One parcel; ``properties.parcel_id`` (or ``id``) names it, ``properties.name`` is optional."""

    type: Literal["Feature"]
    id: str | int | None = None
    geometry: Annotated[PolygonGeometry | MultiPolygonGeometry, Field(discriminator="type")]
    properties: dict[str, Any] | None = None


class ParcelCollection(BaseModel):
    """RFC 7946 GeoJSON (lon/lat, EPSG:4326) FeatureCollection of parcel polygons."""

    type: Literal["FeatureCollection"]
    features: Annotated[list[ParcelFeature], Field(min_length=1)]
    crs: dict[str, Any] | None = Field(
        default=None,
        description='legacy GeoJSON crs member, e.g. {"type": "name", "properties": {"name": "EPSG:4548"}}; '
        "absent = RFC 7946 EPSG:4326",
    )


class UploadFields(BaseModel):
    """Form fields that go with an uploaded parcel file."""

    model_config = ConfigDict(extra="ignore")

    file: bytes = Field(
        json_schema_extra={"format": "binary", "type": "string"},
        description="shapefile zip, GeoJSON, GeoPackage, DXF or 部标 TXT",
    )
    crs: str | None = Field(
        default=None, max_length=200, description="e.g. EPSG:4527, when the file has none"
    )
    encoding: str | None = Field(default=None, max_length=32, description="attribute encoding, e.g. GBK")
    layer: str | None = Field(default=None, max_length=200, description="layer name inside a container")


# --------------------------------------------------------------------------------------- parsing


def validate(model: type[Model], data: Any) -> Model:
    """``model`` from untrusted data; failures are 422 ``invalid_request`` with a readable detail."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation(exc.errors())) from None


async def read_json(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("the body is not valid JSON 请求体不是有效的 JSON") from None
    except RecursionError:
        raise InvalidRequestError("the JSON body is nested too deeply 请求体嵌套层数过多") from None


def content_kind(request: Request) -> Literal["json", "multipart"]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media == "multipart/form-data":
        return "multipart"
    raise InvalidRequestError("send application/json or multipart/form-data 请使用 JSON 或 multipart 上传")


async def parcels_from_upload(
    services: Services, received: ReceivedFile, fields: UploadFields | Any
) -> ParcelSet:
    """Parcels from an uploaded file already streamed to the data dir (read in the threadpool)."""
    crs = parse_crs(fields.crs) if fields.crs else None

    def read() -> ParcelSet:
        with services.cpu_slots:
            return read_parcels(
                received.path,
                work_crs=services.settings.work_crs,
                crs=crs,
                encoding=fields.encoding,
                layer=fields.layer,
                limits=services.limits,
            )

    async with services.cpu_gate():
        return await run_in_threadpool(guarded, read)


def received_parcel_form(request: Request, services: Services) -> Any:
    """``async with`` the fields and the parcel file of a multipart submission (submission limits)."""
    return received_form(request, services.settings.data_dir, services.limits)


def read_parcels_json(services: Services, collection: dict[str, Any], *, rows: bool = False) -> ParcelSet:
    """Parcels from a GeoJSON body, in a worker thread (blocking: call it through the CPU gate).
    ``rows``: read into arrays (:mod:`layers.geojson_rows`; a check needs no frame, a project does)."""
    reader = parcel_rows_from_geojson if rows else parcels_from_geojson

    def read() -> ParcelSet:
        with services.cpu_slots:
            return reader(collection, work_crs=services.settings.work_crs, limits=services.limits)

    return guarded(read)


async def parcels_from_json(services: Services, collection: dict[str, Any]) -> ParcelSet:
    async with services.cpu_gate():
        return await run_in_threadpool(read_parcels_json, services, collection)


T = TypeVar("T")


def guarded(fn: Callable[[], T], what: str = "parcels") -> T:
    """Run a reader on client data: domain errors pass; the errors malformed data raises in libraries
    (ValueError, TypeError, KeyError, IndexError, GEOS errors) become a 422 instead of a 500."""
    try:
        return fn()
    except OneBlueprintError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, ShapelyError) as exc:
        raise InvalidRequestError(f"{what} could not be read: {exc}") from None


# where a finished job's result is read, by job kind
RESULT_PATHS = {"check": "/api/v1/checks/{}", "layer_import": "/api/v1/layers/{}",
                "build": "/api/v1/blueprints/{}"}


def job_body(job: dict[str, Any]) -> dict[str, Any]:
    """A job as clients see it: status, progress (and its detail), and where its result is."""
    body = {k: v for k, v in job.items() if k != "input_hash"}
    path = RESULT_PATHS.get(str(job.get("kind")))
    if job.get("result_id") and path:
        body["result"] = path.format(job["result_id"])
    return body


def job_accepted(job: dict[str, Any]) -> JSONResponse:
    """202 with the job and ``Location: /api/v1/jobs/{id}`` to poll."""
    return JSONResponse(job_body(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job['job_id']}"})


def wants_job(prefer: str | None) -> bool:
    """RFC 7240 ``Prefer: respond-async``: the client asks for a job whatever the size of the work."""
    return prefer is not None and "respond-async" in prefer.lower()
