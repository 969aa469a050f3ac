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
    """Keys with their Chinese and English names, in the rules file's order, each with its group
    (a group is its own; ``is_group`` tells them apart) so a client can list them grouped.
    Either level may be declared as ``project_type``."""
    rules = services.rules
    out = []
    for t in rules.project_types.values():
        group = rules.project_types[t.group_key]
        out.append({"key": t.key, "name_zh": t.name_zh, "name_en": t.name_en,
                    "urban_construction": t.urban_construction, "group": group.key,
                    "group_name_zh": group.name_zh, "group_name_en": group.name_en, "is_group": t.is_group})
    return out


@router.get("/rules", summary="筛查规则 The screening policy in force, with citations and requirements")
def rules_in_force(services: ServicesDep, who: Reader) -> dict[str, Any]:
    """The rules file's version and effective date, and one row per control kind × project type:
    outcome, the regulation it cites (document, number, article) and what a conditional outcome requires."""
    rules = services.rules
    kinds = [k.key for k in services.catalogue.values() if k.group != "boundary"] + list(rules.pseudo_kinds)
    return {"rules": rules.meta.as_dict(), "source": rules.source,
            "project_types": project_types(services, who), "policy": rules.policy(kinds)}
