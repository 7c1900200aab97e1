"""Console actions: each a POST with the page's CSRF token, answered 303 to the page showing
what changed, and logged with the API token's fingerprint (never the token)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import API_TOKEN, FakeClock, Sink, app_state
from console_helpers import catch_up, failing_worker, form_token, kill_runs, login, settle
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from service.jobs.models import Job
from service.outbox.models import HandlerRun, HandlerState, RunState
from service.outbox.worker import Worker
from service.webhooks.models import RejectedDelivery

FINGERPRINT = "3f98e3ad"  # printf %s test-api-token | sha256sum | cut -c1-8


def run_states(app: Flask) -> dict[str, str]:
    with app_state(app).sessions() as session:
        return {run.job_guid or "": run.state for run in session.scalars(select(HandlerRun))}


def console_actions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        record.fields  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "jobhooks.console"
    ]


def test_retry_a_dead_run_and_it_runs_again(
    client: FlaskClient,
    clock: FakeClock,
    app: Flask,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = failing_worker(make_worker, sink)
    kill_runs(post_job, worker, ["JOB-retry-1"])
    [run_id] = [
        int(found)
        for found in re.findall(
            r'data-run-id="(\d+)"', client.get("/console/runs", headers=login()).text
        )
    ]
    token = form_token(client, f"/console/runs/{run_id}")

    response = client.post(
        f"/console/runs/{run_id}/retry", data={"csrf_token": token}, headers=login()
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/console/runs/{run_id}?notice=requeued&run={run_id}"
    assert run_states(app) == {"JOB-retry-1": RunState.PENDING}
    assert "is queued again" in client.get(response.headers["Location"], headers=login()).text
    sink.status = 204
    catch_up(clock)
    settle(worker)
    assert run_states(app) == {"JOB-retry-1": RunState.SUCCEEDED}
    assert len(sink.requests) == 2  # the failed attempt, then the retry
    [action] = console_actions(caplog)
    assert action["action"] == "retry run" and action["run_id"] == run_id
    assert action["token_fingerprint"] == FINGERPRINT and action["operator_name"] == "operator"
    assert API_TOKEN not in caplog.text


def test_retrying_a_run_that_is_not_dead_is_refused(
    client: FlaskClient, post_job: Callable[..., Any]
) -> None:
    post_job(guid="JOB-pending", status=2)
    token = form_token(client, "/console/handlers")  # any form's token is the browser's

    response = client.post("/console/runs/1/retry", data={"csrf_token": token}, headers=login())
    missing = client.post("/console/runs/99/retry", data={"csrf_token": token}, headers=login())

    assert response.status_code == 409 and "only a dead run" in response.text
    assert missing.status_code == 404


def test_bulk_retry_of_one_handler_shows_the_count_then_requeues_only_those(
    client: FlaskClient,
    app: Flask,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = failing_worker(make_worker, sink)
    kill_runs(post_job, worker, ["JOB-bulk-1", "JOB-bulk-2", "JOB-bulk-3"])
    kill_runs(post_job, worker, ["JOB-bulk-alert"], status=9)

    confirm = client.get("/console/runs/retry-dead?handler=mfa_prompt", headers=login())
    assert run_states(app)["JOB-bulk-1"] == RunState.DEAD  # the GET changed nothing
    assert re.search(r"<b>3</b> dead runs of <b>mfa_prompt</b>", confirm.text)
    token = form_token(client, "/console/runs/retry-dead?handler=mfa_prompt")
    response = client.post(
        "/console/runs/retry-dead",
        data={"csrf_token": token, "handler": "mfa_prompt", "expected": "3"},
        headers=login(),
    )

    assert response.status_code == 303
    assert run_states(app) == {
        "JOB-bulk-1": RunState.PENDING,
        "JOB-bulk-2": RunState.PENDING,
        "JOB-bulk-3": RunState.PENDING,
        "JOB-bulk-alert": RunState.DEAD,
    }
    shown = client.get(response.headers["Location"], headers=login()).text
    assert "Re-queued 3 dead run(s) of mfa_prompt (3 when you confirmed)." in shown
    [action] = console_actions(caplog)
    assert action["requeued"] == 3 and action["handler"] == "mfa_prompt"


def test_replay_an_edited_body_creates_the_job(
    client: FlaskClient,
    app: Flask,
    ingest_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = {"job": {"guid": "JOB-fixed", "status": "HALTED", "updated_at": "2026-12-01T09:00:00Z"}}
    assert client.post("/webhooks/mx/jobs", json=bad, headers=ingest_headers).status_code == 422
    token = form_token(client, "/console/quarantine/1")
    still_bad = '{"job": {"guid": "JOB-fixed", "status": "nine"}}'
    fixed = '{"job": {"guid": "JOB-fixed", "status": 9, "updated_at": "2026-12-01T09:00:00Z"}}'

    refused = client.post(
        "/console/quarantine/1/replay",
        data={"csrf_token": token, "body": still_bad},
        headers=login(),
    )
    accepted = client.post(
        "/console/quarantine/1/replay", data={"csrf_token": token, "body": fixed}, headers=login()
    )
    again = client.post(
        "/console/quarantine/1/replay", data={"csrf_token": token, "body": fixed}, headers=login()
    )

    assert refused.status_code == 422
    assert "still invalid" in refused.text and "job.status" in refused.text
    assert "nine" in refused.text  # the edit is kept in the form
    assert accepted.status_code == 303
    assert accepted.headers["Location"].startswith("/console/jobs/JOB-fixed?notice=replayed")
    with app_state(app).sessions() as session:
        job = session.get(Job, "JOB-fixed")
        assert job is not None and job.status == 9
        assert session.scalars(select(RejectedDelivery.replayed_at)).one() is not None
    assert again.status_code == 409
    [action] = console_actions(caplog)
    assert action["edited"] is True and action["outcome"] == "accepted"


def test_replay_as_received_goes_through_the_same_ingest(
    client: FlaskClient, app: Flask, ingest_headers: dict[str, str]
) -> None:
    bad = {"job": {"guid": "JOB-as-is", "status": 2, "updated_at": "yesterday"}}
    assert client.post("/webhooks/mx/jobs", json=bad, headers=ingest_headers).status_code == 422
    token = form_token(client, "/console/quarantine/1")

    response = client.post(
        "/console/quarantine/1/replay", data={"csrf_token": token}, headers=login()
    )

    assert response.status_code == 422  # the stored body is as invalid as it was
    assert "updated_at" in response.text
    with app_state(app).sessions() as session:
        assert session.get(Job, "JOB-as-is") is None


def test_pause_and_resume_a_handler(
    client: FlaskClient, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    token = form_token(client, "/console/handlers")

    paused = client.post(
        "/console/handlers/alert/pause", data={"csrf_token": token}, headers=login()
    )
    page = client.get(paused.headers["Location"], headers=login()).text
    resumed = client.post(
        "/console/handlers/alert/resume", data={"csrf_token": token}, headers=login()
    )
    unknown = client.post(
        "/console/handlers/nobody/pause", data={"csrf_token": token}, headers=login()
    )

    assert paused.status_code == resumed.status_code == 303
    assert "Handler alert is paused" in page and ">Resume</button>" in page
    with app_state(app).sessions() as session:
        assert session.get(HandlerState, "alert").paused is False  # type: ignore[union-attr]
    assert unknown.status_code == 404
    assert [action["action"] for action in console_actions(caplog)] == [
        "pause handler",
        "resume handler",
    ]
