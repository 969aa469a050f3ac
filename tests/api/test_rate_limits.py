"""Rate limits (issue #16 part 3): per API key by role, per client address, stricter on /public and login.

Budgets are set tiny here so each test needs only a handful of requests; the counts are per app.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from runtime.settings import Settings
from tests.api.conftest import Api, make_keys, settings_for
from tests.api.test_service import assert_error

LIMITS = {
    "rate_limits_enabled": True,
    "rate_limit_roles": {"planner": "3/minute", "approval_system": "6/minute", "admin": "100/minute",
                         "reviewer": "3/minute"},
    "rate_limit_anonymous": "4/minute",
    "rate_limit_public": "2/minute",
    "rate_limit_login": "2/minute",
}


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Api]:
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'b.sqlite'}", tmp_path, **LIMITS))
    with TestClient(app) as client:
        yield Api(app, client, make_keys(app.state.services))
    app.state.services.close()


def _assert_429(r) -> None:
    assert_error(r, 429, "too_many_requests")
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["message_zh"]


def test_each_key_has_its_roles_budget(limited: Api) -> None:
    for _ in range(3):
        assert limited.get("planner", "/api/v1/layers").status_code == 200
    _assert_429(limited.get("planner", "/api/v1/layers"))
    # another key (another role, another budget) is not affected
    for _ in range(6):
        assert limited.get("approval_system", "/api/v1/layers").status_code == 200
    _assert_429(limited.get("approval_system", "/api/v1/layers"))
    assert limited.get("admin", "/api/v1/layers").status_code == 200


def test_two_keys_of_one_role_are_counted_apart(limited: Api) -> None:
    from runtime.keys import KeyStore

    second = KeyStore(limited.services.engine).create("second planner", "planner")[0]
    for _ in range(3):
        assert limited.get("planner", "/api/v1/layers").status_code == 200
    _assert_429(limited.get("planner", "/api/v1/layers"))
    r = limited.client.get("/api/v1/layers", headers={"X-API-Key": second})
    assert r.status_code == 200


def test_callers_without_a_valid_key_are_counted_per_address(limited: Api) -> None:
    """Key guessing: 401s until the address's budget is spent, then 429 even for a new guess."""
    for n in range(4):
        r = limited.client.get("/api/v1/layers", headers={"X-API-Key": f"guess-{n}"})
        assert_error(r, 401, "invalid_api_key")
    _assert_429(limited.client.get("/api/v1/layers", headers={"X-API-Key": "guess-5"}))
    _assert_429(limited.client.get("/api/v1/layers"))
    assert limited.get("planner", "/api/v1/layers").status_code == 200, "valid keys keep their own budget"


def test_public_page_and_login_are_stricter(limited: Api) -> None:
    for _ in range(2):
        assert limited.client.get("/public").status_code == 200
    _assert_429(limited.client.get("/public"))
    for _ in range(2):
        assert limited.client.get("/viewer/login").status_code == 200
    _assert_429(limited.client.post("/viewer/login", data={"key": "guess"}))
    assert limited.client.get("/health").status_code == 200


def test_health_is_never_limited(limited: Api) -> None:
    for _ in range(10):
        assert limited.client.get("/health").status_code == 200


def test_budgets_come_from_settings_and_bad_ones_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUEPRINT_RATE_LIMIT_ROLES", json.dumps({"planner": "5/second"}))
    monkeypatch.setenv("BLUEPRINT_RATE_LIMIT_PUBLIC", "1/minute")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.rate_limit_roles == {"planner": "5/second"} and settings.rate_limit_public == "1/minute"
    monkeypatch.setenv("BLUEPRINT_RATE_LIMIT_LOGIN", "lots")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]
