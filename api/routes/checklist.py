"""api.routes.checklist: a project's 用地清单 (land checklist) as JSON, Word and PDF."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Reader
from api.checklist import project_checklist
from api.errors import NotReadyError
from api.routes.common import ServicesDep

router = APIRouter(prefix="/api/v1/projects", tags=["用地清单 land checklist"])

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
VersionQuery = Query(None, description="蓝图版本 blueprint version (default: the latest published)")


async def _checklist(services: Any, code: str, version: str | None) -> dict[str, Any]:
    async with services.cpu_gate():  # a project never screened against the version is screened now
        return await run_in_threadpool(project_checklist, services, code, version)


def _context(request: Request, checklist: dict[str, Any]) -> dict[str, Any]:
    try:
        from viewer.checklist_doc import checklist_context
    except ImportError as exc:  # the viewer package is optional for the API
        raise NotReadyError(f"the checklist documents need the viewer package: {exc}") from None
    info = getattr(request.app.state, "report_info", None)
    return checklist_context(checklist, getattr(info, "project_types", None))


def _attachment(code: str, suffix: str) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="checklist-{code}.{suffix}"',
        "Cache-Control": "private, no-store",
    }


@router.get("/{code}/checklist", summary="用地清单 What the blueprint says about the project's land")
async def checklist_json(
    code: str, services: ServicesDep, who: Reader, version: str | None = VersionQuery
) -> dict[str, Any]:
    """Per parcel: the control lines, zones and overlays it touches, the planning conditions that apply
    (with the declared plan's findings), the regional assessments reusable or still due — each with
    its source layer, feature id and the blueprint version (and checksum). Uses the project's newest
    check against the version; a project never screened against it is screened now, not stored."""
    return await _checklist(services, code, version)


@router.get(
    "/{code}/checklist.docx",
    summary="用地清单（Word）",
    response_class=Response,
    responses={200: {"content": {DOCX: {}}}},
)
async def checklist_docx(
    code: str, request: Request, services: ServicesDep, who: Reader, version: str | None = VersionQuery
) -> Response:
    from viewer.checklist_doc import checklist_docx as render

    context = _context(request, await _checklist(services, code, version))
    data = await run_in_threadpool(render, context)
    return Response(data, media_type=DOCX, headers=_attachment(code, "docx"))


@router.get(
    "/{code}/checklist.pdf",
    summary="用地清单（PDF）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def checklist_pdf(
    code: str, request: Request, services: ServicesDep, who: Reader, version: str | None = VersionQuery
) -> Response:
    from viewer.checklist_doc import checklist_pdf as render
    from viewer.report import ReportUnavailable

    context = _context(request, await _checklist(services, code, version))
    try:
        data = await run_in_threadpool(render, context)
    except ReportUnavailable as exc:
        raise NotReadyError(str(exc)) from None
    return Response(data, media_type="application/pdf", headers=_attachment(code, "pdf"))
