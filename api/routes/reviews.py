"""api.routes.reviews: joint-review meeting decisions (联合审查) recorded against a check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from api.auth import Decider, Reader
from api.routes.common import ServicesDep
from api.routes.projects import ReviewIn

router = APIRouter(prefix="/api/v1/reviews", tags=["联合审查 reviews"])


class CheckReviewIn(ReviewIn):
    check_id: str = Field(min_length=1, max_length=64)


@router.post("", status_code=201, summary="记录审查决定 Record a decision against a check")
def record_review(review: CheckReviewIn, services: ServicesDep, who: Decider) -> dict[str, Any]:
    """Who decided, when, the decision, its conditions and reasons; appended, never edited."""
    return services.record_review(
        review.check_id,
        decided_by=review.decided_by,
        decided_at=review.decided_at,
        decision=review.decision,
        conditions=review.conditions,
        reasons=review.reasons,
        by=who,
    )


@router.get("", summary="审查决定 Decisions recorded against a check or a project")
def list_reviews(
    services: ServicesDep,
    who: Reader,
    check_id: Annotated[str | None, Query(max_length=64)] = None,
    project: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    return services.projects.reviews(check_id=check_id, code=project)
