"""api.routes.common: shared dependencies, request bodies (JSON or multipart) and documented schemas."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.errors import ShapelyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from api.errors import InvalidRequestError, PayloadTooLargeError, describe_validation
from api.tempfiles import upload_prefix
from layers.crs import parse_crs
from layers.errors import FileTooLargeError, OneBlueprintError, UnreadableLayerError
from layers.formats import SHAPEFILE_PARTS
from layers.ingest import parcels_from_geojson, read_parcels
from layers.model import Limits, ParcelSet
from runtime.services import Services


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


SAFE_NAME = re.compile(r"[^\w.\-]+", re.UNICODE)


def safe_filename(name: str | None, default: str = "upload") -> str:
    """The base name of an uploaded file, without directories or odd characters (extension kept)."""
    base = Path((name or "").replace("\\", "/")).name
    base = SAFE_NAME.sub("_", base).lstrip(".")
    return base[:120] or default


def refuse_loose_shapefile_part(name: str) -> None:
    """A Shapefile is several files: one part alone (a bare .shp) cannot be read as the user meant."""
    if Path(name).suffix.lower() in SHAPEFILE_PARTS:
        raise UnreadableLayerError(
            f"{name}: a Shapefile is several files; upload the .shp/.shx/.dbf/.prj together as a .zip"
        )


async def save_upload(upload: StarletteUploadFile, directory: Path, limits: Limits | int) -> Path:
    """Copy an upload into ``directory`` (a fresh temp dir), refusing more than ``limits.max_bytes``.

    ``limits`` is the set the file is read with (its error names the setting); a bare int is a byte
    limit that names none.
    """
    refuse_loose_shapefile_part(safe_filename(upload.filename))
    if isinstance(limits, int):
        limits = Limits(max_bytes=limits)
    path = directory / safe_filename(upload.filename)
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > limits.max_bytes:
                found = f"{safe_filename(upload.filename)}: {size:,} bytes or more"
                raise FileTooLargeError(limits.exceeded("max_bytes", found) + " 文件超过上传上限")
            out.write(chunk)
    return path


class TempDir:
    """An upload's private temporary directory, removed whatever happens."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix=upload_prefix()))  # swept at start-up if we are killed
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


async def form_upload(request: Request, max_bytes: int) -> tuple[dict[str, str], StarletteUploadFile]:
    """The text fields and the single ``file`` part of a multipart request."""
    try:
        form = await request.form(max_files=1, max_fields=32)
    except OneBlueprintError:
        raise
    except Exception as exc:  # malformed multipart bodies come from the client, never a 500
        if getattr(exc, "status_code", None) == 413:  # the body limit (api.app.BodyLimit) says which
            detail = getattr(exc, "detail", None)
            raise PayloadTooLargeError(
                detail if isinstance(detail, str) else f"request body larger than {max_bytes} bytes"
            ) from None
        raise InvalidRequestError(f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    upload = form.get("file")
    if not isinstance(upload, StarletteUploadFile | UploadFile):
        raise InvalidRequestError("multipart field 'file' (the parcel or layer file) is required 缺少文件")
    fields = {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    return fields, upload


async def parcels_from_upload(
    services: Services, upload: StarletteUploadFile, fields: UploadFields | Any
) -> ParcelSet:
    """Parcels from an uploaded file (read in a private temp dir, in the threadpool)."""
    with TempDir() as tmp:
        path = await save_upload(upload, tmp, services.limits)
        crs = parse_crs(fields.crs) if fields.crs else None

        def read() -> ParcelSet:
            with services.cpu_slots:
                return read_parcels(
                    path,
                    work_crs=services.settings.work_crs,
                    crs=crs,
                    encoding=fields.encoding,
                    layer=fields.layer,
                    limits=services.limits,
                )

        async with services.cpu_gate():
            return await run_in_threadpool(guarded, read)


async def parcels_from_json(services: Services, collection: dict[str, Any]) -> ParcelSet:
    def read() -> ParcelSet:
        with services.cpu_slots:
            return parcels_from_geojson(
                collection, work_crs=services.settings.work_crs, limits=services.limits
            )

    async with services.cpu_gate():
        return await run_in_threadpool(guarded, read)


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
