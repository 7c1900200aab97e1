"""The handler registry and the HANDLERS plan: names, entry points, start-up validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import EntryPoint
from typing import Any

import pytest
import requests
from conftest import SIGNING_SECRET, job_body
from db_rows import rows
from sqlalchemy.engine import Engine

from service.app import create_app
from service.config import ConfigError, Settings
from service.handlers import HandlerEvent, registry
from service.handlers.deliveries import HttpDelivery, utc_now
from service.handlers.registry import ENTRY_POINT_GROUP, handler_plan, load_handlers
from service.outbox.models import HandlerRun
from service.outbox.worker import Worker

NOTIFY_ONLY = "whsec_bm90aWZ5LW9ubHktc2VjcmV0LWtleQ=="

received: list[HandlerEvent] = []


def audit(event: HandlerEvent) -> None:
    """A user's handler, installed through the entry-point group."""
    received.append(event)


def failing(event: HandlerEvent) -> None:
    raise RuntimeError(f"ledger unavailable for {event.job.guid}")


NOT_CALLABLE = 42


def use_entry_points(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    points = [
        EntryPoint(name=name, value=f"{__name__}:{target}", group=ENTRY_POINT_GROUP)
        for name, target in targets.items()
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)


def plan_from(handlers: str) -> Settings:
    return Settings.from_env({"HANDLERS": handlers})


def test_unset_plan_is_the_built_in_status_table() -> None:
    plan = handler_plan(Settings())
    assert plan(2) == ("mfa_prompt",)
    assert plan(7) == plan(8) == ("user_action_required",)
    assert plan(6) == ("data_ready",)
    assert plan(9) == ("alert",)
    assert plan(0) == plan(3) == plan(12345) == ()


def test_plan_overrides_only_the_statuses_it_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(monkeypatch, audit="audit")
    plan = handler_plan(plan_from("CHALLENGED=mfa_prompt,audit; 9=alert,audit ;COMPLETED="))
    assert plan(2) == ("mfa_prompt", "audit")
    assert plan(9) == ("alert", "audit")
    assert plan(6) == ()
    assert plan(8) == ("user_action_required",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("CHALLENGED", "must be STATUS=handler"),
        ("WAITING=alert", "unknown status 'WAITING'"),
        ("HALTED=alert;9=alert", "listed twice"),
    ],
)
def test_malformed_plan_is_one_clear_line(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        plan_from(raw)
    assert "\n" not in str(error.value)


def test_unknown_handler_name_fails_start_up_of_the_web_process(database_url: str) -> None:
    settings = replace(
        plan_from("CHALLENGED=mfa_prompt,no_such_handler"),
        database_url=database_url,
        allow_unauthenticated=True,
    )
    with pytest.raises(ConfigError) as error:
        create_app(settings)
    assert str(error.value).startswith(
        "HANDLERS: unknown handler 'no_such_handler' for CHALLENGED; registered handlers: alert, "
    )


def test_entry_point_may_not_take_a_built_in_name(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(monkeypatch, alert="audit")
    with pytest.raises(ConfigError, match="has the name of a built-in handler"):
        handler_plan(Settings())


def test_entry_point_that_cannot_load_fails_worker_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_entry_points(monkeypatch, broken="no_such_function", odd="NOT_CALLABLE")
    with requests.Session() as http, pytest.raises(ConfigError, match="'broken'.*failed to load"):
        load_handlers(Settings(), http)
    use_entry_points(monkeypatch, odd="NOT_CALLABLE")
    with requests.Session() as http, pytest.raises(ConfigError, match="'odd'.*is not callable"):
        load_handlers(Settings(), http)


@pytest.mark.parametrize(
    ("notify_secret", "webhook_secrets", "expected"),
    [
        (NOTIFY_ONLY, (SIGNING_SECRET,), NOTIFY_ONLY),
        # Never an inbound secret: a notification signed with it would pass as MX's.
        (None, (SIGNING_SECRET,), None),
        (None, (), None),  # unsigned, with a warning at start-up
    ],
    ids=["notify-secret", "only-webhook-secret", "none"],
)
def test_notifications_are_signed_with_the_notify_secret_only(
    notify_secret: str | None, webhook_secrets: tuple[str, ...], expected: str | None
) -> None:
    settings = Settings(
        notify_url="http://127.0.0.1:1/hook",
        notify_signing_secret=notify_secret,
        signing_secrets=webhook_secrets,
    )
    with requests.Session() as http:
        delivery = registry._notify_delivery(settings, http, utc_now)

    assert isinstance(delivery, HttpDelivery)
    assert delivery.signing_secret == expected


def test_user_handler_receives_the_typed_event(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    ingest_headers: dict[str, str],
    make_worker: Callable[..., Worker],
    engine: Engine,
) -> None:
    use_entry_points(monkeypatch, audit="audit", failing="failing")
    app = create_app(replace(settings, handler_plan=plan_from("2=audit,failing").handler_plan))
    client = app.test_client()
    received.clear()
    try:
        for status, updated in ((1, "10:00:10"), (2, "10:00:30")):
            body = {"job": job_body(status=status, updated_at=f"2026-11-25T{updated}+00:00")}
            assert (
                client.post("/webhooks/mx/jobs", json=body, headers=ingest_headers).status_code
                == 204
            )
    finally:
        app.extensions["jobhooks"].engine.dispose()
    worker = make_worker()

    assert worker.run_once() and worker.run_once() and not worker.run_once()
    audit_run, failing_run = rows(engine, HandlerRun)
    [event] = received
    assert (event.run_id, event.handler, event.attempt) == (audit_run.id, "audit", 1)
    assert event.idempotency_key == audit_run.idempotency_key
    assert event.job.guid == "JOB-6f1c2e0a-4d6b-4c1e-9b7a-1a2b3c4d5e6f"
    assert event.job.status == 2
    assert event.previous is not None and event.previous.status == 1
    assert event.payload is not None and event.payload["status"] == 2
    assert audit_run.state == "succeeded"
    assert failing_run.state == "pending"
    assert failing_run.last_error == f"RuntimeError: ledger unavailable for {event.job.guid}"


def test_a_run_for_a_handler_no_longer_registered_fails_and_is_kept(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], engine: Engine
) -> None:
    from sqlalchemy import update

    post_job(status=2, status_name="CHALLENGED")
    with engine.begin() as connection:
        connection.execute(update(HandlerRun).values(handler="uninstalled"))
    assert make_worker().run_once()
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.last_error) == (
        "pending",
        "no handler named 'uninstalled' is registered",
    )
