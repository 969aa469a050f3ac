"""api.routes.meta: who is calling and what they may do, and the project types of the rules file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import PERMISSIONS, Reader
from api.routes.common import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["服务信息 meta"])

ROLE_NAMES = {
    "planner": ("规划编审人员", "Planner"),
    "reviewer": ("联审人员", "Reviewer"),
    "admin": ("管理员", "Administrator"),
    "approval_system": ("审批系统", "Approval system"),
}


@router.get("/me", summary="当前用户 The caller's name, role and permitted actions")
def me(who: Reader) -> dict[str, Any]:
    """What a client (the workbench) needs to show or hide controls; the server still checks each call."""
    zh, en = ROLE_NAMES.get(who.role, (who.role, who.role))
    return {
        "name": who.name,
        "role": who.role,
        "role_zh": zh,
        "role_en": en,
        "may": sorted(action for action, roles in PERMISSIONS.items() if who.role in roles),
    }


@router.get("/project-types", summary="项目类型 Project types of the rules in force")
def project_types(services: ServicesDep, who: Reader) -> list[dict[str, Any]]:
    """Keys with their Chinese and English names, in the rules file's order."""
    return [
        {"key": t.key, "name_zh": t.name_zh, "name_en": t.name_en, "urban_construction": t.urban_construction}
        for t in services.rules.project_types.values()
    ]
