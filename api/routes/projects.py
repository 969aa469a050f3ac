"""api.routes.projects: the project pool (库外项目不立项): create, search, screen, lifecycle, locate."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Advancer, Decider, ProjectWriter, Reader
from api.errors import InvalidRequestError
from api.routes.checks import IdempotencyKey, check_response
from api.routes.common import (
    ParcelCollection,
    ServicesDep,
    UploadFields,
    content_kind,
    json_or_multipart,
    parcels_from_json,
    parcels_from_upload,
    read_json,
    received_parcel_form,
    validate,
)
from approval.pool import NewProject
from runtime import rescreen

router = APIRouter(prefix="/api/v1/projects", tags=["项目库 projects"])

# 全国投资项目代码: year, administrative division, industry, approval type, serial
NATIONAL_CODE = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$")


def national_code(code: str) -> str:
    """A new project's code must have the national investment-project code shape."""
    if not NATIONAL_CODE.fullmatch(code):
        raise ValueError(
            f"'{code}' is not a national investment-project code YYYY-DDDDDD-DD-DD-DDDDDD "
            "(e.g. 2026-340700-47-01-000001) 项目代码须为全国投资项目代码格式"
        )
    return code


Code = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["2026-340700-47-01-000001"]),
    AfterValidator(national_code),
]
Status = Literal["planning", "submitted", "screened", "in_review", "cleared", "rejected"]


class ProjectFields(BaseModel):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    project_type: str = Field(min_length=1, max_length=64, examples=["industrial"])
    applicant: str = Field(min_length=1, max_length=200)
    district: str = Field(min_length=1, max_length=100)
    stage: Literal["submitted", "planning"] = Field(
        default="submitted", description="planning: departments give opinions first (策划生成)"
    )

    def as_new(self) -> NewProject:
        return NewProject(self.code, self.name, self.project_type, self.applicant, self.district)


class ProjectCreate(ProjectFields):
    """A project with its parcels as GeoJSON (EPSG:4326)."""

    parcels: ParcelCollection


class ProjectUpload(ProjectFields, UploadFields):
    """A project with its parcels as an uploaded file."""


class ScreenRequest(BaseModel):
    blueprint_version: str | None = Field(default=None, max_length=32)
    declared: dict[str, Any] | None = Field(
        default=None, description="the project's own plan (land_use, far, building_density, green_ratio, "
        "height_m), held against the detailed-plan parcels it overlaps")


class StatusChange(BaseModel):
    status: Literal["in_review", "cleared", "rejected"]
    reason: str = Field(default="", max_length=4000)


class ReviewIn(BaseModel):
    """A joint-review meeting decision (联合审查决定) on the project's latest check unless one is named."""

    check_id: str | None = Field(default=None, max_length=64)
    decided_by: str = Field(
        min_length=1, max_length=1000, description="the meeting or the people who decided"
    )
    decided_at: datetime | None = None
    decision: Literal["approved", "approved_with_conditions", "rejected", "deferred"]
    conditions: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=100)
    reasons: str = Field(default="", max_length=8000)


@router.post(
    "",
    status_code=201,
    summary="项目入库 Create a project with its parcels",
    openapi_extra=json_or_multipart(ProjectCreate, ProjectUpload),
    response_class=JSONResponse,
)
async def create_project(request: Request, services: ServicesDep, who: ProjectWriter) -> JSONResponse:
    """JSON with a GeoJSON ``parcels`` FeatureCollection, or multipart with a parcel ``file``."""
    if content_kind(request) == "json":
        body = validate(ProjectCreate, await read_json(request))
        parcels = await parcels_from_json(services, body.parcels.model_dump(exclude_none=True))
        fields: ProjectFields = body
    else:
        async with received_parcel_form(request, services) as (form_fields, received):
            form = validate(ProjectUpload, {**form_fields, "file": b""})
            parcels = await parcels_from_upload(services, received, form)
        fields = form
    project = await run_in_threadpool(
        services.create_project, fields.as_new(), parcels, by=who, planning=fields.stage == "planning"
    )
    return JSONResponse(project, status_code=201, headers={"Location": f"/api/v1/projects/{project['code']}"})


@router.get("", summary="项目查询 Search projects")
def search_projects(
    services: ServicesDep,
    who: Reader,
    q: Annotated[str | None, Query(max_length=200, description="code or name contains")] = None,
    code: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    district: Annotated[str | None, Query(max_length=100)] = None,
    status: Status | None = None,
    bbox: Annotated[
        str | None,
        Query(
            description="west,south,east,north in EPSG:4326", pattern=r"^\s*-?[\d.]+(\s*,\s*-?[\d.]+){3}\s*$"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    items, total = services.projects.search(
        q=q,
        code=code,
        name=name,
        district=district,
        status=status,
        bbox=parse_bbox(bbox) if bbox else None,
        limit=limit,
        offset=offset,
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidRequestError("bbox must be west,south,east,north") from None
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidRequestError("bbox must be west,south,east,north in degrees, west ≤ east, south ≤ north")
    return west, south, east, north


@router.get("/{code}", summary="项目详情 One project: data, checks, reviews")
def get_project(code: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    return services.project_detail(code)


@router.put(
    "/{code}/parcels",
    summary="更新地块 Replace the project's parcels (earlier set kept)",
    openapi_extra=json_or_multipart(ParcelCollection, UploadFields),
    response_class=JSONResponse,
)
async def replace_parcels(
    code: str, request: Request, services: ServicesDep, who: ProjectWriter
) -> JSONResponse:
    """A re-submission: new parcels (GeoJSON body or uploaded file) replace the stored ones while the
    project is submitted or screened; the earlier set is kept under ``parcel_revisions`` and the
    project is back to ``submitted`` until it is screened again."""
    services.projects.get(code)  # 404 before reading the upload
    if content_kind(request) == "json":
        body = validate(ParcelCollection, await read_json(request))
        parcels = await parcels_from_json(services, body.model_dump(exclude_none=True))
    else:
        async with received_parcel_form(request, services) as (form_fields, received):
            form = validate(UploadFields, {**form_fields, "file": b""})
            parcels = await parcels_from_upload(services, received, form)
    project = await run_in_threadpool(services.replace_parcels, code, parcels, by=who)
    return JSONResponse(project)


@router.get("/{code}/location", summary="项目定位 Locate a project (EPSG:4326)")
def locate(code: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    """Centroid, bbox and geometry in EPSG:4326: what the national system calls to locate a project."""
    return services.location(code)


@router.post(
    "/{code}/checks",
    status_code=201,
    summary="项目合规检测 Screen the project's parcels",
    response_class=Response,
)
async def screen_project(
    code: str,
    services: ServicesDep,
    who: ProjectWriter,
    body: ScreenRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Screen the stored parcels against a published version and link the check; submitted → screened."""
    request = body or ScreenRequest()
    async with services.cpu_gate():
        outcome = await run_in_threadpool(
            services.screen_project, code, request.blueprint_version, by=who,
            idempotency_key=idempotency_key, declared=request.declared,
        )
    return check_response(outcome)


@router.post("/{code}/status", summary="项目状态 Move the project along its lifecycle")
def change_status(code: str, change: StatusChange, services: ServicesDep, who: Advancer) -> dict[str, Any]:
    """screened → in_review → cleared | rejected. A project whose latest check is a conflict is cleared
    only after a joint-review decision (approved) with reasons has been recorded against that check."""
    return services.change_status(code, change.status, by=who, reason=change.reason)


@router.post("/{code}/reviews", status_code=201, summary="联合审查决定 Record a joint-review decision")
def record_project_review(code: str, review: ReviewIn, services: ServicesDep, who: Decider) -> dict[str, Any]:
    project = services.projects.get(code)
    check_id = review.check_id or project["latest_check_id"]
    if not check_id:
        raise InvalidRequestError(f"project {code} has not been screened yet; nothing to decide on")
    if check_id not in {c["check_id"] for c in services.projects.checks(code)}:
        raise InvalidRequestError(f"check {check_id} does not belong to project {code}")
    return services.record_review(
        check_id,
        decided_by=review.decided_by,
        decided_at=review.decided_at,
        decision=review.decision,
        conditions=review.conditions,
        reasons=review.reasons,
        by=who,
    )


class WarningAck(BaseModel):
    note: str = Field(default="", max_length=2000)


@router.post("/{code}/warning/ack", summary="确认预警 Acknowledge the warning of a changed verdict")
def acknowledge_warning(
    code: str, services: ServicesDep, who: ProjectWriter, body: WarningAck | None = None
) -> dict[str, Any]:
    """A re-screening after a publish changed the verdict (``warning`` in the project); the planner has
    seen it. Recorded in the audit log and as ``warning.acknowledged`` in the event feed."""
    return rescreen.acknowledge(services, code, by=who, note=(body or WarningAck()).note)
