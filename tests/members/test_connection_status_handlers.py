"""Handlers for connection statuses: which runs each status queues, one prompt across job and
connection-status CHALLENGED, the institution outage alert, and the worker delivering them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import NOTIFY_SECRET, FakeClock, Sink, app_state, basic_header, drain, job_body
from db_rows import count, rows
from flask import Flask
from flask.testing import FlaskClient
from mx_bodies import MEMBER, URL, USER, status_body
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook

from service.app import create_app
from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_job
from service.jobs.schemas import validate_job
from service.members.cross_source import CrossSourceRules
from service.members.ingest import MemberDelivery, ingest_member_event
from service.members.models import InstitutionAlert, MemberEvent
from service.members.schemas import validate_connection_status
from service.members.statuses import CONNECTION_STATUSES, connection_handlers
from service.outbox.models import HandlerRun
from service.outbox.worker import Worker
from service.platform.db import make_session_factory, transaction
from service.platform.outcomes import IngestResult

INSTITUTION = "INS-1572a04c-912b-59bf-5841-332c7dfafaef"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RULES = CrossSourceRules(
    prompt_window=timedelta(seconds=600),
    outage_window=timedelta(seconds=900),
    outage_threshold=3,
)


class Feed:
    """Ingest straight through the service's functions, with the receive time chosen by the test."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.sessions = make_session_factory(engine)
        self.plan = handler_plan(settings)

    def status(
        self, at: datetime, rules: CrossSourceRules = RULES, **overrides: Any
    ) -> IngestResult:
        callback, raw = validate_connection_status(status_body(**overrides))
        delivery = MemberDelivery(report=callback.report(), raw=raw, received_at=at)
        with transaction(self.sessions) as session:
            return ingest_member_event(session, delivery, connection_handlers, rules)

    def job(self, at: datetime, rules: CrossSourceRules = RULES, **overrides: Any) -> IngestResult:
        job, raw = validate_job(job_body(**{"member_guid": MEMBER, **overrides}))
        with transaction(self.sessions) as session:
            return ingest_job(
                session, JobDelivery(job=job, raw=raw, received_at=at), self.plan, rules
            )


@pytest.fixture
def feed(engine: Engine, settings: Settings) -> Feed:
    return Feed(engine, settings)


def handlers_run(engine: Engine) -> list[str]:
    return [run.handler for run in rows(engine, HandlerRun)]


# Each status, through the real endpoint.


@pytest.mark.parametrize(
    "code",
    sorted(CONNECTION_STATUSES),
    ids=[s.name for _, s in sorted(CONNECTION_STATUSES.items())],
)
def test_each_status_queues_its_handlers_with_the_event(
    client: FlaskClient, engine: Engine, code: int
) -> None:
    body = status_body(connection_status_id=code, connection_status=None)

    assert client.post(URL, json=body, headers=basic_header()).status_code == 204

    [event] = rows(engine, MemberEvent)
    runs = rows(engine, HandlerRun)
    assert [run.handler for run in runs] == list(CONNECTION_STATUSES[code].handlers)
    for run in runs:
        assert (run.member_event_id, run.member_guid, run.event_id, run.job_guid) == (
            event.id,
            MEMBER,
            None,
            None,
        )
        assert (run.state, run.attempts) == ("pending", 0)


@pytest.mark.parametrize(
    "name",
    ["CHALLENGED", "DENIED", "EXPIRED", "IMPAIRED", "IMPEDED", "LOCKED", "PREVENTED", "REJECTED"],
)
def test_every_status_mx_sends_this_webhook_for_is_actionable(name: str) -> None:
    [status] = [s for s in CONNECTION_STATUSES.values() if s.name == name]
    assert status.end_user_actionable
    assert status.handlers == (
        ("mfa_prompt",) if name == "CHALLENGED" else ("user_action_required",)
    )


def test_unknown_future_status_queues_nothing(client: FlaskClient, engine: Engine) -> None:
    body = status_body(connection_status_id=42, connection_status="CHALLENGED_AGAIN")

    assert client.post(URL, json=body, headers=basic_header()).status_code == 204
    assert count(engine, MemberEvent) == 1
    assert count(engine, HandlerRun) == 0


def test_duplicate_and_stale_deliveries_schedule_nothing(feed: Feed, engine: Engine) -> None:
    assert feed.status(T0, connection_status_id=2, connection_status=None).handler_run_ids
    assert feed.status(T0 + timedelta(seconds=5), connection_status_id=2).outcome == "duplicate"
    late = feed.status(
        T0 + timedelta(seconds=9),
        connection_status_id=5,
        connection_status=None,
        updated_at="2026-11-25T09:00:00Z",
    )
    assert late.outcome == "stale"

    assert handlers_run(engine) == ["user_action_required"]


def test_a_run_owes_exactly_one_event(feed: Feed, engine: Engine) -> None:
    feed.job(T0)
    feed.status(T0)
    now = datetime.now(UTC)
    with engine.begin() as connection, pytest.raises(IntegrityError):
        connection.execute(
            insert(HandlerRun).values(
                event_id=1,
                member_event_id=1,
                handler="x",
                state="pending",
                attempts=0,
                due_at=now,
                idempotency_key="k-both",
                created_at=now,
                updated_at=now,
            )
        )


# One prompt for a job CHALLENGED and a connection-status CHALLENGED of the same member.


@pytest.mark.parametrize("connection_first", [True, False], ids=["status-first", "job-first"])
def test_job_and_connection_challenged_within_the_window_prompt_once(
    feed: Feed, engine: Engine, connection_first: bool
) -> None:
    def job(at: datetime) -> None:
        feed.job(at, status=2)

    first, second = (feed.status, job) if connection_first else (job, feed.status)
    first(T0)
    second(T0 + timedelta(seconds=30))

    assert handlers_run(engine) == ["mfa_prompt"]
    [run] = rows(engine, HandlerRun)
    assert (run.member_event_id is not None) == connection_first
    assert run.member_guid == MEMBER


def test_challenged_after_the_window_prompts_again(feed: Feed, engine: Engine) -> None:
    feed.job(T0, status=2)
    feed.status(T0 + timedelta(seconds=601))

    assert handlers_run(engine) == ["mfa_prompt", "mfa_prompt"]


def test_a_new_challenge_after_a_rejected_answer_prompts_again(feed: Feed, engine: Engine) -> None:
    feed.status(T0)
    feed.status(T0 + timedelta(seconds=20), connection_status_id=4, connection_status="REJECTED")
    feed.status(T0 + timedelta(seconds=40))
    feed.job(T0 + timedelta(seconds=41), status=2)

    assert handlers_run(engine) == ["mfa_prompt", "user_action_required", "mfa_prompt"]


def test_a_job_that_ended_ends_the_challenge(feed: Feed, engine: Engine) -> None:
    feed.status(T0)
    feed.job(T0 + timedelta(seconds=10), status=8, updated_at="2026-11-25T10:00:10Z")
    feed.job(T0 + timedelta(seconds=20), guid="JOB-2", status=2)

    assert handlers_run(engine) == ["mfa_prompt", "user_action_required", "mfa_prompt"]


def test_each_job_challenge_still_prompts_as_before(feed: Feed, engine: Engine) -> None:
    # Only the other source holds a prompt back: job-only users see no change.
    feed.job(T0, status=2, updated_at="2026-11-25T10:00:00Z")
    feed.job(T0 + timedelta(seconds=5), status=2, updated_at="2026-11-25T10:00:05Z")
    feed.job(T0 + timedelta(seconds=9), guid="JOB-2", status=2)
    feed.status(T0 + timedelta(seconds=10))

    assert handlers_run(engine) == ["mfa_prompt", "mfa_prompt", "mfa_prompt"]


def test_other_members_are_prompted_independently(feed: Feed, engine: Engine) -> None:
    feed.job(T0, status=2)
    feed.status(T0, member_guid="MBR-someone-else")

    assert handlers_run(engine) == ["mfa_prompt", "mfa_prompt"]


def test_a_job_without_a_member_is_always_prompted(feed: Feed, engine: Engine) -> None:
    feed.job(T0, status=2, member_guid=None)
    feed.job(T0, guid="JOB-2", status=2, member_guid=None)

    assert handlers_run(engine) == ["mfa_prompt", "mfa_prompt"]


@pytest.fixture
def two_apps(settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    first, second = create_app(settings), create_app(settings)
    yield first, second
    for app in (first, second):
        app_state(app).engine.dispose()


def test_job_and_connection_challenged_racing_prompt_once(
    two_apps: tuple[Flask, Flask], engine: Engine
) -> None:
    for index in range(5):
        member = f"MBR-race-{index}"
        barrier = threading.Barrier(2, timeout=10)
        posts: list[tuple[Flask, str, dict[str, Any]]] = [
            (two_apps[0], URL, status_body(member_guid=member)),
            (
                two_apps[1],
                "/webhooks/mx/jobs",
                job_body(guid=f"JOB-race-{index}", member_guid=member, status=2),
            ),
        ]

        def post(
            app: Flask, url: str, body: dict[str, Any], wait: threading.Barrier = barrier
        ) -> int:
            client = app.test_client()
            wait.wait()
            return client.post(url, json=body, headers=basic_header()).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = [f.result(timeout=60) for f in [pool.submit(post, *p) for p in posts]]
        assert statuses == [204, 204]
        assert count(engine, HandlerRun, member_guid=member, handler="mfa_prompt") == 1


# The institution outage alert.


def members_of_institution(feed: Feed, count_: int, at: datetime, prefix: str = "MBR-i") -> None:
    for index in range(count_):
        feed.job(at, guid=f"JOB-{prefix}-{index}", member_guid=f"{prefix}-{index}", status=6)


def test_enough_members_of_one_institution_impaired_or_degraded_raise_one_alert(
    feed: Feed, engine: Engine
) -> None:
    members_of_institution(feed, 5, T0)
    feed.status(T0, member_guid="MBR-i-0", connection_status_id=20, connection_status=None)
    feed.status(T0 + timedelta(seconds=60), member_guid="MBR-i-1", connection_status_id=9)
    assert count(engine, HandlerRun, handler="alert") == 0

    third = feed.status(T0 + timedelta(seconds=120), member_guid="MBR-i-2", connection_status_id=20)
    feed.status(T0 + timedelta(seconds=180), member_guid="MBR-i-3", connection_status_id=9)

    [alert] = rows(engine, HandlerRun, handler="alert")
    assert alert.member_event_id == third.event_id
    assert alert.context == {
        "institution_guid": INSTITUTION,
        "member_count": 3,
        "window_seconds": 900,
    }
    [window] = rows(engine, InstitutionAlert)
    assert (window.institution_guid, window.member_count) == (INSTITUTION, 3)


def test_the_outage_alert_repeats_once_the_window_has_passed(feed: Feed, engine: Engine) -> None:
    members_of_institution(feed, 6, T0)
    for index in range(3):
        feed.status(T0, member_guid=f"MBR-i-{index}", connection_status_id=20)
    later = T0 + timedelta(seconds=901)
    for index in range(3, 6):
        feed.status(later, member_guid=f"MBR-i-{index}", connection_status_id=9)

    assert count(engine, HandlerRun, handler="alert") == 2


def test_members_outside_the_window_or_recovered_do_not_count(feed: Feed, engine: Engine) -> None:
    members_of_institution(feed, 4, T0)
    feed.status(T0, member_guid="MBR-i-0", connection_status_id=20)
    feed.status(T0, member_guid="MBR-i-1", connection_status_id=20)
    feed.status(T0 + timedelta(seconds=10), member_guid="MBR-i-1", connection_status_id=6)
    later = T0 + timedelta(seconds=1000)
    feed.status(later, member_guid="MBR-i-2", connection_status_id=9)
    feed.status(later, member_guid="MBR-i-3", connection_status_id=9)

    assert count(engine, HandlerRun, handler="alert") == 0


def test_members_of_other_institutions_or_unknown_institution_do_not_count(
    feed: Feed, engine: Engine
) -> None:
    members_of_institution(feed, 1, T0)
    feed.job(T0, guid="JOB-x", member_guid="MBR-x", institution_guid="INS-other")
    feed.status(T0, member_guid="MBR-i-0", connection_status_id=20)
    feed.status(T0, member_guid="MBR-x", connection_status_id=20)
    feed.status(T0, member_guid="MBR-nobody-knows", connection_status_id=20)

    assert count(engine, HandlerRun, handler="alert") == 0


# End to end: the worker delivers member runs to real HTTP receivers.


@pytest.fixture
def notify_worker(make_worker: Callable[..., Worker], sink: Sink) -> Worker:
    return make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)


@pytest.mark.parametrize(
    ("code", "name", "handler", "action"),
    [
        (3, "CHALLENGED", "mfa_prompt", "prompt_user_for_mfa"),
        (19, "EXPIRED", "user_action_required", "ask_user_to_update_credentials"),
        (5, "LOCKED", "user_action_required", "ask_user_to_update_credentials"),
    ],
)
def test_member_runs_deliver_a_signed_member_notification(
    client: FlaskClient,
    post_job: Callable[..., Any],
    notify_worker: Worker,
    sink: Sink,
    engine: Engine,
    code: int,
    name: str,
    handler: str,
    action: str,
) -> None:
    post_job(job_body(member_guid=MEMBER, status=6))
    assert drain(notify_worker) == 1  # data_ready for the job
    client.post(
        URL,
        json=status_body(connection_status_id=6, connection_status="CONNECTED"),
        headers=basic_header(),
    )
    body = status_body(connection_status_id=code, connection_status=name)
    assert client.post(URL, json=body, headers=basic_header()).status_code == 204

    assert drain(notify_worker) == 1
    received = sink.requests[-1]
    [run] = rows(engine, HandlerRun, handler=handler)
    [event] = rows(engine, MemberEvent, id=run.member_event_id)
    document = Webhook(NOTIFY_SECRET).verify(received.body, received.headers)
    assert received.headers["webhook-id"] == run.idempotency_key
    assert document["type"] == f"member.{handler}"
    assert document["data"] == {
        "action": action,
        "member_guid": MEMBER,
        "user_guid": USER,
        "institution_guid": INSTITUTION,
        "connection_status_id": code,
        "connection_status": name,
        "connection_status_message": body["connection_status_message"],
        "event_at": event.event_at.isoformat().replace("+00:00", "Z"),
        "previous_connection_status_id": 6,
        "previous_connection_status": "CONNECTED",
        "source": "connection_status",
        "member_event_id": event.id,
    }
    assert run.state == "succeeded"


def test_outage_alert_posts_slack_text_naming_the_institution_and_count(
    feed: Feed, make_worker: Callable[..., Worker], make_sink: Callable[[], Sink], engine: Engine
) -> None:
    alerts = make_sink()
    worker = make_worker(alert_url=alerts.url)
    members_of_institution(feed, 3, T0)
    for index in range(3):
        feed.status(T0, member_guid=f"MBR-i-{index}", connection_status_id=20)
    # Only the outage alert goes to ALERT_URL; the user notifications go to NOTIFY_URL (logged).
    drain(worker)

    [received] = alerts.requests
    [run] = rows(engine, HandlerRun, handler="alert")
    assert set(received.json()) == {"text"}
    text = received.json()["text"]
    for expected in (INSTITUTION, "3 members", "IMPAIRED or DEGRADED", "15 minutes"):
        assert expected in text
    assert received.headers["webhook-id"] == run.idempotency_key
    assert run.state == "succeeded"


def test_job_runs_still_deliver_alongside_member_runs(
    post_job: Callable[..., Any], client: FlaskClient, notify_worker: Worker, sink: Sink
) -> None:
    post_job(job_body(guid="JOB-alone", member_guid="MBR-alone", status=8))
    client.post(URL, json=status_body(connection_status_id=2), headers=basic_header())

    assert drain(notify_worker) == 2
    assert sorted(r.json()["type"] for r in sink.requests) == [
        "job.user_action_required",
        "member.user_action_required",
    ]


def test_handler_runs_api_lists_member_runs(
    client: FlaskClient, api_headers: dict[str, str], feed: Feed, clock: FakeClock
) -> None:
    feed.status(T0)

    response = client.get(f"/handler-runs?member_guid={MEMBER}", headers=api_headers)

    assert response.status_code == 200
    [run] = response.get_json()["handler_runs"]
    assert (run["handler"], run["member_guid"], run["job_guid"], run["event_id"]) == (
        "mfa_prompt",
        MEMBER,
        None,
        None,
    )
    assert run["member_event_id"] == 1
