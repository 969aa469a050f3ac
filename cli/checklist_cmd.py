"""cli.checklist_cmd: `blueprint checklist`, the 用地清单 of parcels (JSON on stdout, Word/PDF with --out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from checks.errors import CheckError
from cli.common import domain_errors, emit, note

OUT_SUFFIXES = (".docx", ".pdf")


def register(app: typer.Typer) -> None:
    app.command("checklist")(checklist)


def checklist(
    parcels: Path = typer.Argument(..., help="parcels: shapefile/zip, GeoPackage, GeoJSON, DXF, 部标 TXT…"),
    version: str | None = typer.Option(
        None, "--version", help="blueprint version (default: latest published)"
    ),
    project_type: str = typer.Option(
        "industrial", "--type", "--project-type", "-t", help="project type (`blueprint rules` lists them)"
    ),
    declare: list[str] = typer.Option(
        [],
        "--declare",
        help="the project's plan, repeatable: land_use=0701, far=2.8, "
        "building_density=30, green_ratio=35, height_m=60",
    ),
    check_date: str | None = typer.Option(
        None,
        "--check-date",
        help="YYYY-MM-DD the regional assessments' validity is judged on (default today)",
    ),
    out: Path | None = typer.Option(None, "--out", help="also write the checklist as .docx or .pdf"),
    crs: str | None = typer.Option(None, "--crs", help="CRS of a file that declares none, e.g. EPSG:4527"),
    encoding: str | None = typer.Option(None, "--encoding", help="attribute encoding, e.g. GBK"),
    layer: str | None = typer.Option(None, "--layer", help="layer inside a GeoPackage/zip/DXF"),
) -> None:
    """用地清单: lines, zones, overlays, planning conditions and regional assessments of the parcels,
    each with its source layer, feature id and blueprint version. Nothing is stored. Exit 3 on bad input."""
    from blueprint.checksum import blueprint_checksum
    from checks.checklist import build_checklist
    from checks.conditions import parse_declared
    from cli.check_cmd import _context, _screener, parse_check_date, parse_declare
    from layers.ingest import read_parcels
    from runtime.settings import get_settings

    with domain_errors():
        if out is not None and out.suffix.lower() not in OUT_SUFFIXES:
            raise CheckError(f"--out {out}: the checklist is written as .docx or .pdf")
        declared = parse_declared(parse_declare(declare))  # a bad value exits 3 before any file is read
        day = parse_check_date(check_date)
        settings = get_settings()
        stores, catalogue, rules = _context(settings)
        try:
            rules.require_project_type(project_type)
            screener = _screener(settings, stores, catalogue, rules, version)
            parcel_set = read_parcels(
                parcels,
                work_crs=settings.work_crs,
                crs=crs,
                encoding=encoding,
                layer=layer,
                limits=settings.submission_limits("cli"),
            )
            result = screener.screen(parcel_set, project_type, declared=declared, check_date=day)
            meta = stores.blueprints.summary(str(result["blueprint_version"]))
        finally:
            stores.close()
        sheet = build_checklist(
            result, catalogue=catalogue, blueprint_checksum=blueprint_checksum(meta), stored=False
        )
        if out is not None:
            _write(sheet, out)
    emit(sheet)
    note(
        f"用地清单: {sheet['summary']['parcels']} parcel(s), {sheet['summary']['conditions']} condition(s) "
        f"({sheet['summary']['conditions_breached']} breached), {sheet['summary']['assessments_reusable']} "
        f"reusable assessment(s), blueprint {sheet['blueprint']['version']}"
    )


def _write(sheet: dict[str, Any], out: Path) -> None:
    """The checklist as Word or PDF (like the review report); no Chromium is a clear error for .pdf."""
    from viewer.checklist_doc import checklist_context, checklist_docx, checklist_pdf
    from viewer.report import ReportUnavailable

    context = checklist_context(sheet)
    try:
        data = checklist_docx(context) if out.suffix.lower() == ".docx" else checklist_pdf(context)
    except ReportUnavailable as exc:
        raise CheckError(f"--out {out}: {exc}") from None
    out.write_bytes(data)
    note(f"wrote {out}")
