"""The service's PostgreSQL role cannot TRUNCATE (issue #16 red-team defect 1, the part left open).

0009_upload_jobs grants ``blueprint_service`` rows (SELECT, INSERT, UPDATE, DELETE), never TRUNCATE and
no ownership. The service connects as a login role in it: the whole flow works (layers, build, publish,
checks), while TRUNCATE, disabling the guard triggers and switching them off for the session are refused.
A superuser (the test server's ``postgres``) could do all three; that is why the service must not be one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from fastapi.testclient import TestClient
from psycopg2 import sql

from api.app import create_app
from tests.api.conftest import PASS_PARCEL, Api, collection, make_keys, publish_city, settings_for
from tests.dbfixtures import PG_ADMIN_DSN

pytestmark = pytest.mark.postgis


@pytest.fixture
def service_url(postgis_database_url: str) -> Iterator[str]:
    """A login role in ``blueprint_service`` (as scripts/setup.sh makes ``blueprint_app``), its URL."""
    role = f"blueprint_app_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE blueprint_service").format(sql.Identifier(role)))
    host_and_db = postgis_database_url.split("@", 1)[1]
    try:
        yield f"postgresql://{role}@{host_and_db}"
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


def test_the_service_role_runs_the_service_and_cannot_truncate(service_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for(service_url, tmp_path, worker_in_process=False))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        publish_city(api, tmp_path)
        r = api.post("planner", "/api/v1/checks",
                     json={"project_type": "industrial", "parcels": collection(PASS_PARCEL)})
        assert r.status_code == 201, r.text
    app.state.services.close()

    conn = psycopg2.connect(service_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            user, superuser = cur.fetchone()
            assert user.startswith("blueprint_app_") and not superuser
            for table in ("checks", "pieces", "blueprints", "conflicts", "audit_log"):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(f"TRUNCATE {table}")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):  # only the owner may
                cur.execute("ALTER TABLE checks DISABLE TRIGGER ALL")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):  # only a superuser may
                cur.execute("SET session_replication_role = replica")
            cur.execute("SELECT count(*) FROM checks")
            assert cur.fetchone()[0] == 1, "the check is still there"
    finally:
        conn.close()
