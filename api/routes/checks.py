"""api.routes.checks: screen parcels against the blueprint (the approval system's entry) and read results."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Checker, Reader
from api.routes.common import (
    ParcelCollection,
    ServicesDep,
    UploadFields,
    content_kind,
    job_body,
    json_or_multipart,
    parcels_from_upload,
    read_json,
    read_parcels_json,
    received_parcel_form,
    validate,
)
from checks.errors import InvalidDeclaredError
from runtime.caches import CheckOutcome

router = APIRouter(prefix="/api/v1", tags=["合规检测 checks"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="retrying with the same key returns the first result instead of screening again; "
        "keys are scoped per caller (API key) and may not be blank",
    ),
]


DECLARED_HELP = (
    "the project's own plan, each optional: land_use (用地代码, e.g. 1001), far (容积率), building_density "
    "(建筑密度 %), green_ratio (绿地率 %), height_m (建筑高度 m); held against the detailed-plan parcels it "
    "overlaps (a breach makes the verdict conflict). A value that is not a number is a 422 naming the field"
)


def declared_from_form(text: str | None) -> dict[str, Any] | None:
    """The multipart form's ``declared`` JSON text as a mapping (bad JSON: 422 naming the field)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidDeclaredError('declared: not a JSON object, e.g. {"far": 2.8} 申报指标须为 JSON')
    return value


class CheckRequest(BaseModel):
    """Screen parcels given as GeoJSON (EPSG:4326)."""

    project_type: str = Field(min_length=1, max_length=64, examples=["industrial"])
    blueprint_version: str | None = Field(
        default=None, max_length=32, description="default: the latest published version"
    )
    parcels: ParcelCollection
    declared: dict[str, Any] | None = Field(default=None, description=DECLARED_HELP,
                                            examples=[{"land_use": "1001", "far": 1.2, "height_m": 24}])


class CheckUpload(UploadFields):
    """Screen parcels from an uploaded file."""

    project_type: str = Field(min_length=1, max_length=64)
    blueprint_version: str | None = Field(default=None, max_length=32)
    declared: str | None = Field(default=None, max_length=2000,
                                 description="the declared values as JSON text, e.g. {\"far\": 2.8}")


CHECK_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "the screening result contract (verdict, parcels, conflicts, explanations)"},
    200: {"description": "the stored result of an earlier request with the same Idempotency-Key"},
    202: {"description": "a large submission: queued as a background job (see /api/v1/jobs/{job_id})"},
}


def check_response(outcome: CheckOutcome | dict[str, Any]) -> Response:
    """The stored result text as it is (201, or 200 when replayed), or a job (202)."""
    if isinstance(outcome, dict):
        return JSONResponse(
            job_body(outcome), status_code=202, headers={"Location": f"/api/v1/jobs/{outcome['job_id']}"}
        )
    headers = {"Location": f"/api/v1/checks/{outcome.check_id}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        outcome.text,
        status_code=200 if outcome.replayed else 201,
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "/checks",
    status_code=201,
    summary="地块合规检测 Screen parcels",
    responses=CHECK_RESPONSES,
    openapi_extra=json_or_multipart(CheckRequest, CheckUpload),
    response_class=Response,
)
async def create_check(
    request: Request, services: ServicesDep, who: Checker, idempotency_key: IdempotencyKey = None
) -> Response:
    """Screen a GeoJSON FeatureCollection (JSON body) or an uploaded file (multipart).

    Returns the result contract exactly as stored; ``GET /api/v1/checks/{check_id}`` returns the same text.
    """
    if content_kind(request) == "json":
        body = validate(CheckRequest, await read_json(request))
        collection = body.parcels.model_dump(exclude_none=True)

        def read_and_submit() -> CheckOutcome | dict[str, Any]:
            # one worker thread reads and screens: each hop off the event loop costs a thread switch and
            # a turn through the CPU gate, which under load is most of a small check's wait
            parcels = read_parcels_json(services, collection, rows=True)
            return services.submit(parcels, body.project_type, body.blueprint_version, by=who,
                                   idempotency_key=idempotency_key, declared=body.declared)

        async with services.cpu_gate():
            return check_response(await run_in_threadpool(read_and_submit))
    else:
        async with received_parcel_form(request, services) as (fields, received):
            form = validate(CheckUpload, {**fields, "file": b""})
            parcels = await parcels_from_upload(services, received, form)
        project_type, version = form.project_type, form.blueprint_version
        declared = declared_from_form(form.declared)
    async with services.cpu_gate():
        outcome = await run_in_threadpool(
            services.submit, parcels, project_type, version, by=who, idempotency_key=idempotency_key,
            declared=declared,
        )
    return check_response(outcome)


@router.get(
    "/checks/{check_id}",
    summary="检测结果 A stored check result",
    response_class=Response,
    responses={
        200: {
            "description": "the result text, byte for byte as first returned",
            "content": {"application/json": {}},
        }
    },
)
def get_check(check_id: str, services: ServicesDep, who: Reader) -> Response:
    return Response(services.stores.checks.get(check_id), media_type="application/json")


@router.get("/jobs/{job_id}", summary="后台任务状态 Status of a background job")
def get_job(job_id: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    return job_body(services.jobs.get(job_id))
