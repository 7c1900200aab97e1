"""Migration 0004 goes down with data in it: runs owed to member events go, job runs stay."""

from __future__ import annotations

from typing import Any

from conftest import basic_header, job_body
from flask.testing import FlaskClient
from mx_bodies import URL, status_body
from sqlalchemy import inspect, text

from service.platform import migrations as migrate
from service.platform.db import make_engine

BEFORE_MEMBERS = "0003_auth_failures"


def test_downgrade_keeps_job_runs_and_drops_member_runs(
    client: FlaskClient, post_job: Any, database_url: str
) -> None:
    post_job(job_body(status=2))
    assert client.post(URL, json=status_body(), headers=basic_header()).status_code == 204
    # Dispose of the app's connections so the schema can change underneath.
    client.application.extensions["jobhooks"].engine.dispose()

    migrate.downgrade(database_url, BEFORE_MEMBERS)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            runs = connection.execute(text("SELECT handler, job_guid FROM handler_runs")).all()
            columns = {c["name"] for c in inspect(connection).get_columns("handler_runs")}
    finally:
        engine.dispose()
    assert not tables & {"members", "member_events", "member_prompts", "institution_alerts"}
    assert [tuple(run) for run in runs] == [("mfa_prompt", job_body()["guid"])]
    assert "member_event_id" not in columns

    migrate.upgrade(database_url)
