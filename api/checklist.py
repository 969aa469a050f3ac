"""api.checklist: a pooled project's 用地清单 from its check against a version, or screened now if none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from blueprint.checksum import blueprint_checksum
from checks.checklist import build_checklist

PROJECT_FIELDS = ("code", "name", "applicant", "district", "project_type", "status")


def _stored_check(
    services: Any, code: str, project: dict[str, Any], version: str
) -> tuple[dict[str, Any], str | None] | None:
    """The project's newest check against ``version`` of its current parcel set and when it ran, or None."""
    revision = project.get("parcels_revision")
    for row in reversed(services.projects.checks(code)):
        if str(row["blueprint_version"]) == version and row.get("parcels_revision") == revision:
            text, meta = services.stores.checks.get_with_meta(row["check_id"])
            return json.loads(text), meta.get("created_at")
    return None


def project_checklist(services: Any, code: str, version: str | None = None) -> dict[str, Any]:
    """The checklist of a project against ``version`` (default: the latest published).

    It reads the project's own check against that version (the newest, of its current parcels), so the
    checklist states exactly what the stored check found, declared plan included. A project never
    screened against the version is screened now without storing anything (a GET changes nothing):
    the checklist then says so (``stored: false``, no check id) and lists the conditions without a
    declared plan.
    """
    project = services.projects.get(code)  # project_not_found before any work
    resolved = services.resolve_version(version)
    found = _stored_check(services, code, project, resolved)
    stored = found is not None
    if found is not None:
        result, checked_at = found
    else:
        checked_at = datetime.now(UTC).isoformat()
        screener = services.published.screener(resolved)  # refuses drafts and unknown versions
        with services.cpu_slots:
            result = screener.screen(services.project_parcels(code, project), str(project["project_type"]))
    meta = services.stores.blueprints.summary(resolved)
    return build_checklist(
        result,
        catalogue=services.catalogue,
        blueprint_checksum=blueprint_checksum(meta),
        project={k: project.get(k) for k in PROJECT_FIELDS},
        stored=stored,
        checked_at=checked_at,
    )
