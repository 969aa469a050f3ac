"""api.routes.opinions: departments, opinion rounds (意见征询) and the opinions the approval system reads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import Answerer, ProjectWriter, Reader
from api.routes.common import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["策划生成 planning"])

Text = Annotated[str, Field(max_length=2000)]


class RoundIn(BaseModel):
    """Ask departments for pre-planning opinions (前期意见), due in ``working_days`` working days."""

    departments: list[Annotated[str, Field(min_length=1, max_length=48)]] = Field(min_length=1, max_length=50)
    working_days: int = Field(ge=1, le=120, examples=[5])
    note: str = Field(default="", max_length=4000)


class OpinionIn(BaseModel):
    """同意 / 有条件同意 (with conditions) / 不同意 (with reasons) / 无意见."""

    department: str | None = Field(
        default=None, max_length=48, description="a department key answers for its own department"
    )
    answer: Literal["agree", "agree_with_conditions", "disagree", "no_opinion"]
    conditions: list[Text] = Field(default_factory=list, max_length=100)
    reasons: str = Field(default="", max_length=8000)


class CloseIn(BaseModel):
    """After the deadline: on to 报建 (``submitted``) or back to the applicant (``returned``)."""

    outcome: Literal["submitted", "returned"]
    reason: str = Field(min_length=1, max_length=4000)


@router.get("/departments", summary="征询部门 The departments asked for opinions")
def departments(services: ServicesDep, who: Reader) -> list[dict[str, str]]:
    return [d.as_dict() for d in services.departments.values()]


@router.post("/projects/{code}/rounds", status_code=201, summary="发起意见征询 Open an opinion round")
def open_round(code: str, body: RoundIn, services: ServicesDep, who: ProjectWriter) -> dict[str, Any]:
    return services.planning.open_round(code, body.departments, body.working_days, note=body.note, by=who)


@router.post(
    "/projects/{code}/rounds/{round_id}/opinions",
    status_code=201,
    summary="部门答复 A department's opinion",
)
def answer(code: str, round_id: str, body: OpinionIn, services: ServicesDep, who: Answerer) -> dict[str, Any]:
    """Appended, never edited; the round closes when the last department answers (any 不同意: returned)."""
    return services.planning.answer(
        code,
        round_id,
        department=body.department,
        answer=body.answer,
        conditions=body.conditions,
        reasons=body.reasons,
        by=who,
    )


@router.post(
    "/projects/{code}/rounds/{round_id}/close", summary="办结意见征询 Close a round after its deadline"
)
def close_round(
    code: str, round_id: str, body: CloseIn, services: ServicesDep, who: ProjectWriter
) -> dict[str, Any]:
    return services.planning.close(code, round_id, body.outcome, reason=body.reason, by=who)


@router.get("/projects/{code}/opinions", summary="前期意见 Every round and opinion of a project")
def opinions(code: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    """What the approval system reads while it approves: each department's answer, or pending/overdue."""
    services.require_in_pool(code)
    return services.planning.opinions(code)
