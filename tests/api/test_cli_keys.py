"""`blueprint keys create|list|revoke` and `blueprint serve --help` (the CLI side of the service)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cli.main import build_app
from runtime.keys import KeyStore


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BLUEPRINT_DATABASE_URL", db_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(build_app(), list(args))


def test_create_list_revoke(run, engine: Engine) -> None:
    created = run("keys", "create", "--role", "approval_system", "--name", "省审批系统")
    assert created.exit_code == 0, created.output
    record = json.loads(created.stdout)
    assert record["role"] == "approval_system" and record["key"].startswith("obk_")
    assert KeyStore(engine).verify(record["key"]).name == "省审批系统"
    listed = run("keys", "list")
    assert record["key"] not in listed.stdout
    assert [k["key_id"] for k in json.loads(listed.stdout)["keys"]] == [record["key_id"]]
    assert run("keys", "revoke", record["key_id"]).exit_code == 0
    assert KeyStore(engine).verify(record["key"]) is None
    assert run("keys", "revoke", "nope").exit_code == 3


def test_bad_role_is_a_usage_error(run) -> None:
    result = run("keys", "create", "--role", "root", "--name", "x")
    assert result.exit_code == 2


def test_serve_is_registered() -> None:
    result = CliRunner().invoke(build_app(), ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--host" in result.output


def test_keys_file(db_url: str, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from runtime.keys import KeyFileError
    from tests.api.conftest import settings_for

    made = CliRunner().invoke(build_app(), ["keys", "file-entry", "--role", "reviewer", "--name", "联审会"])
    assert made.exit_code == 0, made.output
    printed = json.loads(made.stdout)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([printed["entry"]], ensure_ascii=False), encoding="utf-8")
    assert printed["key"] not in path.read_text(encoding="utf-8")
    app = create_app(settings_for(db_url, tmp_path, api_keys_file=path))
    with TestClient(app) as client:
        ok = client.get("/api/v1/projects", headers={"X-API-Key": printed["key"]})
        assert ok.status_code == 200
        denied = client.get("/api/v1/audit", headers={"X-API-Key": printed["key"]})
        assert denied.status_code == 403
    app.state.services.close()
    path.write_text('[{"name": "x", "role": "root", "sha256": "00"}]', encoding="utf-8")
    with pytest.raises(KeyFileError, match="entry 1"):
        create_app(settings_for(db_url, tmp_path, api_keys_file=path))


def test_department_keys_from_the_cli_and_the_keys_file(run, db_url: str, engine: Engine, tmp_path) -> None:
    """A department key names its department (CLI, key file); it then answers for that department."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from runtime.keys import KeyFileError
    from tests.api.conftest import settings_for

    created = run("keys", "create", "--role", "department", "--name", "水务局经办人", "--department", "water")
    assert created.exit_code == 0, created.output
    assert KeyStore(engine).verify(json.loads(created.stdout)["key"]).department == "water"
    assert run("keys", "create", "--role", "department", "--name", "x").exit_code == 2
    assert run("keys", "create", "--role", "department", "--name", "x", "--department", "mars").exit_code == 2
    made = CliRunner().invoke(
        build_app(),
        ["keys", "file-entry", "--role", "department", "--name", "林业局", "--department", "forestry"],
    )
    assert made.exit_code == 0, made.output
    printed = json.loads(made.stdout)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([printed["entry"]], ensure_ascii=False), encoding="utf-8")
    app = create_app(settings_for(db_url, tmp_path, api_keys_file=path))
    with TestClient(app) as client:
        principal = app.state.services.keyring.principal(printed["key"])
        assert principal.role == "department" and principal.department == "forestry"
        assert client.get("/api/v1/departments", headers={"X-API-Key": printed["key"]}).status_code == 200
    app.state.services.close()
    path.write_text('[{"name": "x", "role": "department", "sha256": "' + "0" * 64 + '"}]', encoding="utf-8")
    with pytest.raises(KeyFileError, match="names its department"):
        create_app(settings_for(db_url, tmp_path, api_keys_file=path))
