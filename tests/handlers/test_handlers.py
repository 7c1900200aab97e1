"""Built-in handlers end to end: webhook in, worker run, real HTTP sink out, on both databases."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from conftest import NOTIFY_SECRET, FakeClock, Sink, drain, job_body
from db_rows import rows
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook

from service.outbox.models import HandlerRun
from service.outbox.worker import Worker

JOB_GUID = "JOB-6f1c2e0a-4d6b-4c1e-9b7a-1a2b3c4d5e6f"


@pytest.fixture
def notify_worker(make_worker: Callable[..., Worker], sink: Sink) -> Worker:
    return make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)


@pytest.mark.parametrize(
    ("status", "status_name", "handler", "action"),
    [
        (2, "CHALLENGED", "mfa_prompt", "prompt_user_for_mfa"),
        (8, "DENIED", "user_action_required", "ask_user_to_update_credentials"),
        (7, "PREVENTED", "user_action_required", "ask_user_to_update_credentials"),
        (6, "COMPLETED", "data_ready", "fetch_member_data"),
    ],
)
def test_notify_handlers_deliver_a_signed_notification(
    post_job: Callable[..., Any],
    notify_worker: Worker,
    sink: Sink,
    engine: Engine,
    status: int,
    status_name: str,
    handler: str,
    action: str,
) -> None:
    post_job(status=1, status_name="REQUESTED", updated_at="2026-11-25T10:00:10+00:00")
    assert post_job(status=status, status_name=status_name).status_code == 204

    assert drain(notify_worker) == 1
    [received] = sink.requests
    [run] = rows(engine, HandlerRun, handler=handler)
    # Verified by the reference library, exactly as a receiver would.
    document = Webhook(NOTIFY_SECRET).verify(received.body, received.headers)
    assert received.headers["webhook-id"] == run.idempotency_key
    assert received.headers["content-type"] == "application/json"
    assert document["type"] == f"job.{handler}"
    assert document["data"] == {
        "action": action,
        "job_guid": JOB_GUID,
        "member_guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
        "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
        "institution_guid": "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
        "status": status,
        "status_name": status_name,
        "is_authenticated": True,
        "error_message": None,
        "updated_at": "2026-11-25T10:00:30Z",
        "previous_status": 1,
        "previous_status_name": "REQUESTED",
        "event_id": run.event_id,
    }
    assert run.state == "succeeded"
    assert run.attempts == 1
    assert run.finished_at is not None


def test_alert_posts_slack_text_with_job_member_institution_and_error(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], make_sink: Any, engine: Engine
) -> None:
    alerts: Sink = make_sink()
    worker = make_worker(alert_url=alerts.url)
    post_job(status=9, status_name="HALTED", error_message="institution maintenance window")

    assert drain(worker) == 1
    [received] = alerts.requests
    [run] = rows(engine, HandlerRun, handler="alert")
    text = received.json()["text"]
    assert set(received.json()) == {"text"}
    for expected in (
        JOB_GUID,
        "HALTED",
        "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
        "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
        "institution maintenance window",
    ):
        assert expected in text
    assert received.headers["webhook-id"] == run.idempotency_key
    assert run.state == "succeeded"


def test_without_a_url_the_handler_logs_what_it_would_send(
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobhooks.deliveries")
    post_job(status=2, status_name="CHALLENGED")
    assert drain(make_worker()) == 1
    [record] = [r for r in caplog.records if r.name == "jobhooks.deliveries"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["destination"] == "NOTIFY_URL"
    assert fields["document"]["type"] == "job.mfa_prompt"
    assert [run.state for run in rows(engine, HandlerRun)] == ["succeeded"]


def test_failing_sink_backs_off_then_goes_dead_and_retry_requeues(
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    clock: FakeClock,
    engine: Engine,
    client: Any,
    api_headers: dict[str, str],
) -> None:
    draws = iter([0.5, 0.25, 1.0])
    worker = make_worker(
        jitter=lambda: next(draws),
        notify_url=sink.url,
        notify_signing_secret=NOTIFY_SECRET,
        handler_retry_base_seconds=5.0,
        handler_max_attempts=4,
        # The retried prompt is an hour old by the end; this test is about retries, not expiry.
        handler_max_age_seconds=(),
    )
    sink.status = 503
    post_job(status=2, status_name="CHALLENGED")

    # Ceilings 5, 10, 20 s; full jitter scales each by the injected draw.
    for expected_delay in (2.5, 2.5, 20.0):
        assert worker.run_once()
        [run] = rows(engine, HandlerRun)
        assert run.state == "pending"
        assert run.last_error == "DeliveryFailed: NOTIFY_URL: HTTP 503"
        assert (run.due_at - clock.now).total_seconds() == pytest.approx(expected_delay, abs=1e-3)
        clock.advance(expected_delay - 0.01)
        assert not worker.run_once(), "claimed before it was due"
        clock.advance(0.01)

    assert worker.run_once()
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.attempts, run.last_error) == (
        "dead",
        4,
        "DeliveryFailed: NOTIFY_URL: HTTP 503",
    )
    assert run.finished_at is not None
    clock.advance(3600)
    assert not worker.run_once(), "a dead run is never claimed"

    answer = client.post(f"/handler-runs/{run.id}/retry", headers=api_headers)
    assert answer.status_code == 202
    assert (answer.json["state"], answer.json["attempts"]) == ("pending", 0)
    sink.status = 200
    assert drain(worker) == 1
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.attempts, run.last_error) == ("succeeded", 1, None)
    assert len(sink.requests) == 5
    assert {r.headers["webhook-id"] for r in sink.requests} == {run.idempotency_key}


def test_a_slow_receiver_times_out_and_is_retried(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], sink: Sink, engine: Engine
) -> None:
    worker = make_worker(
        notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET, handler_timeout_seconds=0.3
    )
    sink.hold()
    post_job(status=2, status_name="CHALLENGED")

    assert worker.run_once()
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.last_error) == ("pending", "DeliveryFailed: NOTIFY_URL: ReadTimeout")


def test_a_redirect_is_not_a_delivery(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], sink: Sink, engine: Engine
) -> None:
    worker = make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)
    sink.answer(307)
    post_job(status=2, status_name="CHALLENGED")

    assert worker.run_once()
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.last_error) == ("pending", "DeliveryFailed: NOTIFY_URL: HTTP 307")


def test_unreachable_receiver_error_does_not_reveal_the_url(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], engine: Engine
) -> None:
    # Slack-style URLs carry their secret in the path; it must not reach last_error or logs.
    url = "http://127.0.0.1:9/services/T000/B000/secret-path-token"
    worker = make_worker(notify_url=url, notify_signing_secret=NOTIFY_SECRET)
    post_job(status=2, status_name="CHALLENGED")

    assert worker.run_once()
    [run] = rows(engine, HandlerRun)
    assert run.last_error == "DeliveryFailed: NOTIFY_URL: ConnectionError"


def test_stale_and_duplicate_events_schedule_nothing(
    post_job: Callable[..., Any], notify_worker: Worker, sink: Sink, engine: Engine
) -> None:
    post_job(status=6, status_name="COMPLETED", updated_at="2026-11-25T10:05:00+00:00")
    post_job(status=6, status_name="COMPLETED", updated_at="2026-11-25T10:05:00+00:00")
    # Late: MX's CHALLENGED from before the job completed arrives afterwards.
    post_job(status=2, status_name="CHALLENGED", updated_at="2026-11-25T10:01:00+00:00")
    post_job(status=9, status_name="HALTED", updated_at="2026-11-25T10:02:00+00:00")

    assert [run.handler for run in rows(engine, HandlerRun)] == ["data_ready"]
    assert drain(notify_worker) == 1
    assert [r.json()["type"] for r in sink.requests] == ["job.data_ready"]


def test_a_job_with_a_purged_payload_still_runs_from_the_stored_columns(
    post_job: Callable[..., Any], notify_worker: Worker, sink: Sink, engine: Engine
) -> None:
    from sqlalchemy import update

    from service.jobs.models import JobEvent

    post_job(status=2, status_name="CHALLENGED")
    with engine.begin() as connection:
        connection.execute(update(JobEvent).values(payload=None))

    assert drain(notify_worker) == 1
    data = sink.requests[0].json()["data"]
    assert (data["job_guid"], data["status"], data["member_guid"]) == (JOB_GUID, 2, None)


def test_body_is_identical_on_every_attempt(
    post_job: Callable[..., Any],
    notify_worker: Worker,
    sink: Sink,
    clock: FakeClock,
) -> None:
    sink.answer(500)
    post_job(job_body(status=2, status_name="CHALLENGED", new_mx_field={"kept": True}))
    assert notify_worker.run_once()
    clock.advance(10)
    assert notify_worker.run_once()
    first, second = sink.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
