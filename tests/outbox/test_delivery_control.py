"""Delivery that copes with failing receivers, in process with an injected clock: the retry
horizon, the circuit breaker, pause and resume, superseded and expired runs, lanes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import NOTIFY_SECRET, FakeClock, Sink, drain, job_body
from db_rows import count, rows
from flask.testing import FlaskClient
from mx_bodies import URL, status_body
from sqlalchemy.engine import Engine

from service.cli import cli
from service.outbox.backoff import RetryPolicy
from service.outbox.lanes import Lane, LaneBook
from service.outbox.models import CircuitState, HandlerRun, HandlerState, RunState
from service.outbox.worker import Worker

PostJob = Callable[..., Any]


def challenged(post_job: PostJob, guid: str, **fields: Any) -> None:
    body = job_body(guid=guid, status=2, status_name="CHALLENGED", **fields)
    assert post_job(body).status_code == 204


def states(engine: Engine, handler: str) -> list[str]:
    return sorted(run.state for run in rows(engine, HandlerRun, handler=handler))


# The retry horizon.


def test_retries_go_on_until_the_horizon_and_the_last_one_lands_on_it() -> None:
    policy = RetryPolicy(base_seconds=5, horizon_seconds=100)

    assert policy.delay(1, lambda: 1.0, age_seconds=0) == 5
    assert policy.delay(30, lambda: 1.0, age_seconds=10) == 90, "capped to what is left"
    assert policy.delay(3, lambda: 1.0, age_seconds=100) is None
    assert RetryPolicy(5).delay(1000, lambda: 0.5) == 1800, "no attempt limit; a wait is capped"


def test_an_attempt_limit_still_applies_when_configured() -> None:
    policy = RetryPolicy(base_seconds=5, max_attempts=3, horizon_seconds=86400)

    assert policy.delay(2, lambda: 1.0) == 10
    assert policy.delay(3, lambda: 1.0) is None


def test_a_receiver_down_for_ten_minutes_leaves_no_prompt_dead(
    post_job: PostJob,
    make_worker: Callable[..., Worker],
    sink: Sink,
    clock: FakeClock,
    engine: Engine,
) -> None:
    worker = make_worker(
        notify_url=sink.url,
        notify_signing_secret=NOTIFY_SECRET,
        handler_circuit_failures=1000,
        handler_max_age_seconds=(),
    )
    sink.status = 503
    challenged(post_job, "JOB-outage")

    for _ in range(40):  # ten minutes of retries, each as late as the schedule allows
        worker.run_once()
        clock.advance(15)
    sink.status = 200
    clock.advance(3600)
    drain(worker)

    [run] = rows(engine, HandlerRun)
    assert run.state == RunState.SUCCEEDED


# The circuit breaker.


def test_the_circuit_opens_after_consecutive_failures_and_waiting_runs_spend_no_attempts(
    post_job: PostJob,
    make_worker: Callable[..., Worker],
    make_sink: Callable[[], Sink],
    sink: Sink,
    clock: FakeClock,
    engine: Engine,
) -> None:
    alerts = make_sink()
    worker = make_worker(
        notify_url=sink.url,
        notify_signing_secret=NOTIFY_SECRET,
        alert_url=alerts.url,
        handler_circuit_failures=3,
        handler_circuit_cooldown_seconds=10,
        # Retries far apart: only the circuit closing makes the failed runs due again soon.
        handler_retry_base_seconds=1000,
    )
    sink.status = 503
    for index in range(6):
        challenged(post_job, f"JOB-c{index}")

    for _ in range(3):
        assert worker.run_once()
    [state] = rows(engine, HandlerState, handler="mfa_prompt")
    assert (state.circuit, state.consecutive_failures) == (CircuitState.OPEN, 3)
    attempts = {run.id: run.attempts for run in rows(engine, HandlerRun, handler="mfa_prompt")}

    clock.advance(5)  # retries are due, but the circuit is still cooling down
    drain(worker)  # delivers the alert only
    assert {run.id: run.attempts for run in rows(engine, HandlerRun, handler="mfa_prompt")} == (
        attempts
    )
    assert len(sink.requests) == 3
    [alert] = alerts.requests
    assert "mfa_prompt" in alert.json()["text"] and "3 failures" in alert.json()["text"]

    sink.status = 200
    clock.advance(5)  # cool-down over: one probe, which succeeds and closes the circuit
    drain(worker)  # and the runs that waited for the receiver are due again at once

    [state] = rows(engine, HandlerState, handler="mfa_prompt")
    assert (state.circuit, state.consecutive_failures) == (CircuitState.CLOSED, 0)
    assert states(engine, "mfa_prompt") == [RunState.SUCCEEDED] * 6
    assert len(alerts.requests) == 1, "one alert per opening"


def test_a_failed_probe_reopens_the_circuit_for_twice_as_long(
    post_job: PostJob,
    make_worker: Callable[..., Worker],
    sink: Sink,
    clock: FakeClock,
    engine: Engine,
) -> None:
    worker = make_worker(
        notify_url=sink.url,
        notify_signing_secret=NOTIFY_SECRET,
        handler_circuit_failures=1,
        handler_circuit_cooldown_seconds=10,
        handler_circuit_max_cooldown_seconds=100,
        handler_retry_base_seconds=0.001,
    )
    sink.status = 503
    challenged(post_job, "JOB-p1")
    challenged(post_job, "JOB-p2")
    worker.run_once()
    [first] = rows(engine, HandlerState, handler="mfa_prompt")

    clock.advance(10)
    worker.run_once()  # the probe fails

    [second] = rows(engine, HandlerState, handler="mfa_prompt")
    assert second.circuit == CircuitState.OPEN
    assert second.open_until is not None and first.open_until is not None
    assert (second.open_until - clock.now).total_seconds() == pytest.approx(20, abs=0.5)
    assert len(sink.requests) == 2


# Pause and resume.


def test_a_paused_handler_keeps_its_runs_while_others_deliver_and_resume_sends_them_once(
    post_job: PostJob,
    client: FlaskClient,
    api_headers: dict[str, str],
    make_worker: Callable[..., Worker],
    make_sink: Callable[[], Sink],
    sink: Sink,
    engine: Engine,
) -> None:
    alerts = make_sink()
    worker = make_worker(
        notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET, alert_url=alerts.url
    )
    paused = client.post("/handlers/mfa_prompt/pause", headers=api_headers)
    assert paused.status_code == 202 and paused.json["paused"] is True
    challenged(post_job, "JOB-paused")
    assert post_job(job_body(guid="JOB-halted", status=9, status_name="HALTED")).status_code == 204

    drain(worker)
    assert (len(sink.requests), len(alerts.requests)) == (0, 1)
    listed = {
        h["handler"]: h for h in client.get("/handlers", headers=api_headers).json["handlers"]
    }
    assert (listed["mfa_prompt"]["paused"], listed["mfa_prompt"]["due_runs"]) == (True, 1)

    assert client.post("/handlers/mfa_prompt/resume", headers=api_headers).status_code == 202
    drain(worker)
    assert len(sink.requests) == 1
    assert states(engine, "mfa_prompt") == [RunState.SUCCEEDED]


def test_pausing_an_unknown_handler_is_404_and_the_api_needs_a_token(client: FlaskClient) -> None:
    assert client.post("/handlers/mfa_prompt/pause").status_code == 401
    headers = {"Authorization": "Bearer test-api-token"}
    assert client.post("/handlers/no_such_handler/pause", headers=headers).status_code == 404


def test_the_cli_pauses_resumes_and_lists_handlers(database_url: str, engine: Engine) -> None:
    def jobhooks(*args: str) -> Any:
        environment = {"DATABASE_URL": database_url, "HANDLERS": ""}
        return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)

    assert jobhooks("handlers", "pause", "alert").exit_code == 0
    [state] = rows(engine, HandlerState, handler="alert")
    assert state.paused
    listed = jobhooks("handlers", "list")
    assert "alert\tpaused\tcircuit=closed" in listed.output
    assert jobhooks("handlers", "resume", "alert").exit_code == 0
    assert not rows(engine, HandlerState, handler="alert")[0].paused
    assert jobhooks("handlers", "pause", "nope").exit_code != 0


# Runs that no longer matter.


def test_a_prompt_for_a_job_that_moved_on_is_superseded_not_delivered(
    post_job: PostJob, make_worker: Callable[..., Worker], sink: Sink, engine: Engine
) -> None:
    worker = make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)
    challenged(post_job, "JOB-moved", updated_at="2026-11-25T10:00:30+00:00")
    completed = job_body(
        guid="JOB-moved", status=6, status_name="COMPLETED", updated_at="2026-11-25T10:01:00+00:00"
    )
    assert post_job(completed).status_code == 204

    drain(worker)

    assert states(engine, "mfa_prompt") == [RunState.SUPERSEDED]
    assert [r.json()["type"] for r in sink.requests] == ["job.data_ready"]


def test_a_prompt_older_than_its_maximum_age_expires(
    post_job: PostJob,
    make_worker: Callable[..., Worker],
    sink: Sink,
    clock: FakeClock,
    engine: Engine,
) -> None:
    worker = make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)
    challenged(post_job, "JOB-old")
    clock.advance(16 * 60)

    drain(worker)

    [run] = rows(engine, HandlerRun)
    assert (run.state, run.attempts, len(sink.requests)) == (RunState.EXPIRED, 0, 0)


def test_asking_for_credentials_is_superseded_once_the_member_reconnected(
    client: FlaskClient,
    ingest_headers: dict[str, str],
    make_worker: Callable[..., Worker],
    sink: Sink,
    engine: Engine,
) -> None:
    worker = make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)
    denied = status_body(connection_status_id=2, updated_at="2026-11-25T10:00:00Z")
    connected = status_body(connection_status_id=6, updated_at="2026-11-25T10:05:00Z")
    assert client.post(URL, json=denied, headers=ingest_headers).status_code == 204
    assert client.post(URL, json=connected, headers=ingest_headers).status_code == 204

    drain(worker)

    assert states(engine, "user_action_required") == [RunState.SUPERSEDED]
    assert sink.requests == []


def test_moot_runs_can_be_listed_by_state(
    post_job: PostJob,
    client: FlaskClient,
    api_headers: dict[str, str],
    make_worker: Callable[..., Worker],
    clock: FakeClock,
) -> None:
    challenged(post_job, "JOB-listed")
    clock.advance(16 * 60)
    drain(make_worker())

    listed = client.get("/handler-runs?state=expired", headers=api_headers)
    assert [run["state"] for run in listed.json["handler_runs"]] == ["expired"]


# Lanes.


def test_a_handler_holds_at_most_its_share_of_a_process_s_loops() -> None:
    book = LaneBook(["alert", "mfa_prompt"], loops=4, shares={"alert": 3})
    mfa, alert = Lane("mfa_prompt"), Lane("alert")

    with book.hold(mfa) as first, book.hold(mfa) as second, book.hold(mfa) as third:
        assert (first, second, third) == (True, True, False)
        with book.hold(alert) as other:
            assert other, "another handler's lane is not held up"
    with book.hold(mfa) as again:
        assert again, "a finished loop frees its place"


def test_loops_take_the_lanes_in_turn() -> None:
    book = LaneBook(["a", "b", "c"], loops=4)

    firsts = [book.order(frozenset(), frozenset())[0].handler for _ in range(3)]
    assert firsts == ["a", "b", "c"]
    blocked = [lane.handler for lane in book.order(frozenset({"b"}), frozenset())]
    assert sorted(blocked[:2]) == ["a", "c"] and blocked[2] is None


def test_a_slow_handler_does_not_hold_up_another_handlers_runs(
    post_job: PostJob,
    make_worker: Callable[..., Worker],
    make_sink: Callable[[], Sink],
    sink: Sink,
    engine: Engine,
) -> None:
    alerts = make_sink()
    worker = make_worker(
        notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET, alert_url=alerts.url
    )
    for index in range(5):
        challenged(post_job, f"JOB-slow{index}")
    assert post_job(job_body(guid="JOB-h", status=9, status_name="HALTED")).status_code == 204

    # Each run_once serves one lane, in turn: the alert goes within the first two claims.
    worker.run_once()
    worker.run_once()
    assert len(alerts.requests) == 1
    assert count(engine, HandlerRun, handler="mfa_prompt", state=RunState.PENDING) >= 3
