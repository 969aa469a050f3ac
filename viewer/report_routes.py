"""viewer.report_routes: the 审查报告 of a stored check as Word, Excel, HTML and PDF under /api/v1/checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse, Response

from layers.catalogue import Catalogue
from viewer import report as report_mod
from viewer import report_office
from viewer.report import ReportInfo
from viewer.source import ViewerSource

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(check_id: str, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="report-{check_id}.{suffix}"',
            "Cache-Control": "private, no-store"}


def build_report_router(source: ViewerSource, auth_dependency: Callable[..., Any], catalogue: Catalogue,
                        info: ReportInfo) -> APIRouter:
    """``GET /api/v1/checks/{check_id}/report.{docx,xlsx,html,pdf}`` for any signed-in role."""
    router = APIRouter(prefix="/api/v1/checks", tags=["审查报告 reports"],
                       dependencies=[Depends(auth_dependency)])

    def context(check_id: str, *, with_map: bool = True) -> dict[str, Any]:
        try:
            return report_mod.report_context(source, check_id, catalogue, info, with_map=with_map)
        except KeyError:
            raise HTTPException(status_code=404, detail=f"unknown check {check_id}") from None

    @router.get("/{check_id}/report.docx", summary="审查报告（Word） The review report as Word",
                response_class=Response, responses={200: {"content": {DOCX: {}}}})
    def report_docx(check_id: str) -> Response:
        return Response(report_office.docx_report(context(check_id)), media_type=DOCX,
                        headers=_attachment(check_id, "docx"))

    @router.get("/{check_id}/report.xlsx", summary="审查报告（Excel） One row per parcel × control layer",
                response_class=Response, responses={200: {"content": {XLSX: {}}}})
    def report_xlsx(check_id: str) -> Response:
        return Response(report_office.xlsx_report(context(check_id, with_map=False)), media_type=XLSX,
                        headers=_attachment(check_id, "xlsx"))

    @router.get("/{check_id}/report.html", summary="审查报告（网页） Printable HTML report",
                response_class=HTMLResponse)
    def report_html(check_id: str) -> HTMLResponse:
        return HTMLResponse(report_mod.render_template("report.html", **context(check_id)))

    @router.get("/{check_id}/report.pdf", summary="审查报告（PDF） The review report as PDF",
                response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
    def report_pdf(check_id: str) -> Response:
        html = report_mod.render_template("report.html", **context(check_id))
        try:
            pdf = report_mod.html_to_pdf(html)
        except report_mod.ReportUnavailable as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return Response(pdf, media_type="application/pdf", headers=_attachment(check_id, "pdf"))

    return router
