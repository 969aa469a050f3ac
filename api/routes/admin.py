"""api.routes.admin: the audit log (read-only) and API keys, for admins."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import Admin
from api.errors import InvalidRequestError, NotFoundError
from api.routes.common import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["管理 admin"])


@router.get("/audit", summary="审计日志 The append-only audit log")
def audit(
    services: ServicesDep,
    who: Admin,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    entries = services.audit.entries(
        subject_type=subject_type, subject_id=subject_id, action=action, limit=limit, offset=offset
    )
    return {"items": entries, "limit": limit, "offset": offset}


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["planner", "reviewer", "admin", "approval_system", "department"]
    department: str | None = Field(default=None, max_length=48, description="for a department key")


@router.post("/keys", status_code=201, summary="创建密钥 Create an API key (shown once)")
def create_key(body: KeyIn, services: ServicesDep, who: Admin) -> JSONResponse:
    if (body.role == "department") != bool(body.department):
        raise InvalidRequestError("a department key names its department; other roles name none")
    department = services.departments[body.department].key if body.department else None
    key, record = services.keys.create(body.name, body.role, by=who, department=department)
    # the key itself is in this response only; it is stored hashed and can never be shown again
    return JSONResponse({**record, "key": key}, status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/keys", summary="密钥列表 List API keys (without secrets)")
def list_keys(services: ServicesDep, who: Admin) -> list[dict[str, Any]]:
    return services.keys.list()


@router.delete("/keys/{key_id}", status_code=204, summary="吊销密钥 Revoke an API key")
def revoke_key(key_id: str, services: ServicesDep, who: Admin) -> Response:
    if not services.keys.revoke(key_id, by=who):
        raise NotFoundError(f"no active key {key_id}")
    return Response(status_code=204)
