"""GET /handler-runs and POST /handler-runs/<id>/retry: bearer token, filters, re-queue rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from db_rows import rows
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.engine import Engine

from service.outbox.models import HandlerRun


def make_dead(
    engine: Engine, run_id: int, error: str = "DeliveryFailed: NOTIFY_URL: HTTP 500"
) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(HandlerRun)
            .where(HandlerRun.id == run_id)
            .values(state="dead", attempts=8, last_error=error)
        )


@pytest.fixture
def three_runs(post_job: Callable[..., Any], engine: Engine) -> list[HandlerRun]:
    post_job(guid="JOB-a", status=2)
    post_job(guid="JOB-b", status=9)
    post_job(guid="JOB-b", status=6, updated_at="2026-11-25T11:00:00+00:00")
    return rows(engine, HandlerRun)


@pytest.mark.parametrize(
    "request_line", [("get", "/handler-runs"), ("post", "/handler-runs/1/retry")]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_admin_routes_require_a_bearer_token(
    client: FlaskClient, request_line: tuple[str, str], headers: dict[str, str]
) -> None:
    method, path = request_line
    answer = client.open(path, method=method.upper(), headers=headers)
    assert answer.status_code == 401
    assert answer.json["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_list_is_newest_first_and_filters_by_state_and_job(
    client: FlaskClient, api_headers: dict[str, str], three_runs: list[HandlerRun], engine: Engine
) -> None:
    make_dead(engine, three_runs[1].id)

    everything = client.get("/handler-runs", headers=api_headers).json["handler_runs"]
    assert [run["handler"] for run in everything] == ["data_ready", "alert", "mfa_prompt"]
    assert set(everything[0]) >= {"id", "state", "attempts", "due_at", "idempotency_key"}
    assert everything[0]["due_at"].endswith("Z")

    dead = client.get("/handler-runs?state=dead", headers=api_headers).json["handler_runs"]
    assert [(run["handler"], run["last_error"]) for run in dead] == [
        ("alert", "DeliveryFailed: NOTIFY_URL: HTTP 500")
    ]
    job_b = client.get("/handler-runs?job_guid=JOB-b&state=pending", headers=api_headers)
    assert [run["handler"] for run in job_b.json["handler_runs"]] == ["data_ready"]
    limited = client.get("/handler-runs?limit=1", headers=api_headers).json["handler_runs"]
    assert len(limited) == 1


@pytest.mark.parametrize(
    ("query", "field"), [("state=broken", "state"), ("limit=0", "limit"), ("limit=x", "limit")]
)
def test_bad_filters_are_400_naming_the_parameter(
    client: FlaskClient, api_headers: dict[str, str], query: str, field: str
) -> None:
    answer = client.get(f"/handler-runs?{query}", headers=api_headers)
    assert answer.status_code == 400
    assert [detail["field"] for detail in answer.json["details"]] == [field]


def test_retry_requeues_a_dead_run_now_with_a_fresh_budget(
    client: FlaskClient, api_headers: dict[str, str], three_runs: list[HandlerRun], engine: Engine
) -> None:
    dead = three_runs[0]
    make_dead(engine, dead.id)

    answer = client.post(f"/handler-runs/{dead.id}/retry", headers=api_headers)
    assert answer.status_code == 202
    assert answer.json["state"] == "pending"
    assert answer.json["attempts"] == 0
    assert answer.json["idempotency_key"] == dead.idempotency_key
    [run] = rows(engine, HandlerRun, id=dead.id)
    assert (run.state, run.attempts, run.locked_by, run.finished_at) == ("pending", 0, None, None)
    assert run.due_at >= dead.due_at
    # The error stays visible until the next attempt replaces or clears it.
    assert run.last_error == "DeliveryFailed: NOTIFY_URL: HTTP 500"


def test_retry_of_a_run_that_is_not_dead_is_409(
    client: FlaskClient, api_headers: dict[str, str], three_runs: list[HandlerRun]
) -> None:
    answer = client.post(f"/handler-runs/{three_runs[0].id}/retry", headers=api_headers)
    assert answer.status_code == 409
    assert answer.json["error"] == "conflict"
    assert "is pending" in answer.json["message"]


def test_retry_of_an_unknown_run_is_404(client: FlaskClient, api_headers: dict[str, str]) -> None:
    answer = client.post("/handler-runs/999999/retry", headers=api_headers)
    assert answer.status_code == 404
    assert answer.json["error"] == "not_found"
