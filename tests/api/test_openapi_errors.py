"""OpenAPI documents the error body the service really sends (issue #16 defect 13).

Before: 422 was documented as FastAPI's ``HTTPValidationError`` (``{"detail": [...]}``) while every body is
``{code, detail, message_zh?}``, and 400/401/403/404/409/413/429 were not documented at all (51
schemathesis conformance failures).
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_every_operation_documents_the_error_body(city: Api) -> None:
    spec = city.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"code", "detail"} and "message_zh" in body["properties"]
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) > 30
    for path, method, op in operations:
        responses = op["responses"]
        assert "4XX" in responses, f"{method} {path}"
        for status, response in responses.items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert _resolve(spec, schema) == body, f"{method} {path} {status}"


def test_real_error_bodies_match_the_documented_schema(city: Api) -> None:
    spec = city.client.get("/openapi.json").json()
    schema = spec["components"]["schemas"]["ErrorBody"]
    for response in (city.client.get("/api/v1/layers"),  # 401
                     city.get("planner", "/api/v1/layers/no-such"),  # 404
                     city.post("planner", "/api/v1/checks", json={"project_type": ""}),  # 422
                     city.get("planner", "/api/v1/projects", params={"limit": "x"})):  # 422 (FastAPI's own)
        assert 400 <= response.status_code < 500
        body = response.json()
        assert set(schema["required"]) <= set(body) <= set(schema["properties"]), body
        assert all(isinstance(v, str) for v in body.values()), body
