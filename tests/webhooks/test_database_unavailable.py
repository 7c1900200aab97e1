"""With the database gone MX must hear 503 + Retry-After (it will retry), never a 2xx or a trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    API_TOKEN,
    BASIC_PASSWORD,
    BASIC_USER,
    app_state,
    basic_header,
    bearer_header,
    job_body,
)
from db_rows import count
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from werkzeug.test import TestResponse

from service.app import create_app
from service.config import Settings
from service.jobs.models import JobEvent

# Nothing listens on port 1, so every connection attempt is refused at once.
DEAD_POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:1/jobhooks_a"


def unopenable_sqlite_url(tmp_path: Path) -> str:
    # A directory where the database file should be: SQLite cannot open it.
    directory = tmp_path / "not-a-database.db"
    directory.mkdir()
    return f"sqlite:///{directory}"


@pytest.fixture(params=["postgresql", "sqlite"])
def dead_database_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FlaskClient]:
    url = DEAD_POSTGRESQL_URL if request.param == "postgresql" else unopenable_sqlite_url(tmp_path)
    settings = Settings(
        database_url=url,
        basic_auth=((BASIC_USER, BASIC_PASSWORD),),
        api_tokens=(API_TOKEN,),
    )
    app = create_app(settings)
    yield app.test_client()
    app_state(app).engine.dispose()


def assert_unavailable(response: TestResponse, *, error_shape: bool = True) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "psycopg" not in text and "sqlite3" not in text
    if error_shape:
        document = response.get_json()
        assert set(document) == {"error", "message", "details"}
        assert document["error"] == "unavailable"


def test_valid_delivery_gets_503_with_retry_after_when_the_database_is_down(
    dead_database_client: FlaskClient,
) -> None:
    response = dead_database_client.post(
        "/webhooks/mx/jobs", json={"job": job_body()}, headers=basic_header()
    )

    assert_unavailable(response)


def test_rejected_delivery_that_cannot_be_quarantined_gets_503(
    dead_database_client: FlaskClient,
) -> None:
    # A 422 would tell MX to give up on a body we never stored; 503 makes it send it again.
    response = dead_database_client.post(
        "/webhooks/mx/jobs", json={"job": {"status": "x"}}, headers=basic_header()
    )

    assert_unavailable(response)


def test_readyz_is_503_while_healthz_stays_200(dead_database_client: FlaskClient) -> None:
    assert dead_database_client.get("/healthz").status_code == 200
    # The probe reports its checks rather than the error shape; status and Retry-After still hold.
    assert_unavailable(dead_database_client.get("/readyz"), error_shape=False)


def test_job_query_gets_503_when_the_database_is_down(dead_database_client: FlaskClient) -> None:
    response = dead_database_client.get("/jobs/JOB-1", headers=bearer_header())

    assert_unavailable(response)


def test_authentication_is_still_checked_before_the_database(
    dead_database_client: FlaskClient,
) -> None:
    response = dead_database_client.post("/webhooks/mx/jobs", json={"job": job_body()})

    assert response.status_code == 401


def test_delivery_after_a_postgresql_restart_reconnects_instead_of_failing(
    database_url: str, client: FlaskClient, engine: Engine
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to restart")
    first = client.post("/webhooks/mx/jobs", json={"job": job_body()}, headers=basic_header())
    assert first.status_code == 204
    # What a server restart does to pooled connections: every session of this database is cut.
    admin_engine = create_engine(database_url)
    try:
        with admin_engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        admin_engine.dispose()

    response = client.post(
        "/webhooks/mx/jobs", json={"job": job_body(status=9)}, headers=basic_header()
    )

    assert response.status_code == 204
    assert count(engine, JobEvent) == 2
