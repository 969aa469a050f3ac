"""api.routes.events: the event feed linked systems page through, and webhooks (admin)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Admin, Reader
from api.routes.common import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["联动 linked systems"])

POLL_SECONDS = 0.5


@router.get("/events", summary="事件流 Events after a cursor (long polling with wait)")
async def events(
    services: ServicesDep,
    who: Reader,
    after: Annotated[int, Query(ge=0, description="the last ``seq`` seen; 0 = from the start")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[float, Query(ge=0, le=300, description="seconds to wait when nothing is new")] = 0,
    type: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    """Events in ``seq`` order; pass the answer's ``next`` as ``after`` to page on. ``event_id`` is stable:
    the same event delivered twice (feed and webhook, or a retried webhook) has the same id."""
    deadline = time.monotonic() + min(wait, services.settings.events_max_wait_seconds)
    while True:
        items = await run_in_threadpool(services.outbox.events.after, after, limit, types=type or ())
        if items or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    return {"items": items, "next": items[-1]["seq"] if items else after}


class WebhookIn(BaseModel):
    system: str = Field(min_length=1, max_length=200, examples=["工程建设项目审批管理系统"])
    url: str = Field(
        min_length=8, max_length=2000, examples=["https://approval.example.gov.cn/hooks/blueprint"]
    )


@router.post("/webhooks", status_code=201, summary="登记回调 Register a webhook (secret shown once)")
def create_webhook(body: WebhookIn, services: ServicesDep, who: Admin) -> JSONResponse:
    """Every event from now on is POSTed as JSON, signed ``X-Blueprint-Signature: sha256=HMAC(secret,
    "<X-Blueprint-Timestamp>." + body)``, retried with backoff until a 2xx; de-duplicate on
    ``X-Blueprint-Event-Id``."""
    hook = services.outbox.register(body.system, body.url, by=who)
    return JSONResponse(hook, status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/webhooks", summary="回调列表 Webhooks and their delivery counts")
def list_webhooks(services: ServicesDep, who: Admin) -> list[dict[str, Any]]:
    return services.outbox.store.all()


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="停用回调 Disable a webhook")
def disable_webhook(webhook_id: str, services: ServicesDep, who: Admin) -> Response:
    services.outbox.disable(webhook_id, by=who)
    return Response(status_code=204)
