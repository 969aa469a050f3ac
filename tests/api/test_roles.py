"""The role matrix: every protected action admits exactly the roles PERMISSIONS names."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ROLES, Api

ALL = set(ROLES)
# (method, path, json body, roles admitted). Bodies are invalid or targets unknown, so an admitted role
# gets a 404/422 and nothing changes; a refused role must get 403 before the body is even looked at.
MATRIX: list[tuple[str, str, Any, set[str]]] = [
    ("GET", "/api/v1/layers", None, ALL),
    ("POST", "/api/v1/layers", None, {"admin"}),
    ("DELETE", "/api/v1/layers/none", None, {"admin"}),
    ("GET", "/api/v1/blueprints", None, ALL),
    ("GET", "/api/v1/blueprints/v1", None, ALL),
    ("POST", "/api/v1/blueprints", {"tolerance_m": -1}, {"admin"}),
    ("POST", "/api/v1/blueprints/v99/publish", None, {"admin"}),
    ("POST", "/api/v1/checks", {}, {"planner", "approval_system", "admin"}),
    ("GET", "/api/v1/checks/none", None, ALL),
    ("GET", "/api/v1/jobs/none", None, ALL),
    ("GET", "/api/v1/projects", None, ALL),
    ("POST", "/api/v1/projects", {}, {"planner", "admin"}),
    ("GET", "/api/v1/projects/none", None, ALL),
    ("GET", "/api/v1/projects/none/location", None, ALL),
    ("POST", "/api/v1/projects/none/checks", None, {"planner", "admin"}),
    ("POST", "/api/v1/projects/none/status", {"status": "in_review"}, {"planner", "reviewer", "admin"}),
    (
        "POST",
        "/api/v1/projects/none/reviews",
        {"decided_by": "m", "decision": "approved"},
        {"reviewer", "admin"},
    ),
    ("POST", "/api/v1/reviews", {}, {"reviewer", "admin"}),
    ("GET", "/api/v1/reviews", None, ALL),
    ("GET", "/api/v1/audit", None, {"admin"}),
    ("GET", "/api/v1/keys", None, {"admin"}),
    ("POST", "/api/v1/keys", {}, {"admin"}),
    ("GET", "/ogc", None, ALL),
    ("GET", "/ogc/collections", None, ALL),
    ("GET", "/ogc/collections/blueprint-v1-pieces/items", None, ALL),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "admitted"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX]
)
def test_role_matrix(city: Api, method: str, path: str, body: Any, admitted: set[str]) -> None:
    for role in ROLES:
        r = city.client.request(method, path, headers=city.h(role), json=body)
        if role in admitted:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
            assert r.status_code < 500, r.text
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert r.json()["code"] == "forbidden"
    r = city.client.request(method, path, json=body)
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
