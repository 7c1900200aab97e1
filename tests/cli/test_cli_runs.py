"""`jobhooks runs list|retry` and `jobhooks replay` against both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import NOTIFY_SECRET, Sink, basic_header
from db_rows import rows
from flask.testing import FlaskClient
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine

from service.cli import cli
from service.members.models import MemberEvent
from service.outbox.models import HandlerRun
from service.outbox.worker import Worker

MEMBER_URL = "/webhooks/mx/connection-status"


@pytest.fixture
def jobhooks(database_url: str) -> Callable[..., Result]:
    def run(*args: str, **env: str) -> Result:
        environment = {"DATABASE_URL": database_url, "HANDLERS": "", **env}
        return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)

    return run


def kill_runs(engine: Engine, *run_ids: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(HandlerRun)
            .where(HandlerRun.id.in_(run_ids))
            .values(state="dead", attempts=8, last_error="DeliveryFailed: NOTIFY_URL: HTTP 500")
        )


@pytest.fixture
def two_jobs(post_job: Callable[..., Any], engine: Engine) -> list[HandlerRun]:
    post_job(guid="JOB-a", status=2)
    post_job(guid="JOB-b", status=9)
    return rows(engine, HandlerRun)


def test_runs_list_shows_state_handler_attempts_and_error(
    jobhooks: Callable[..., Result], two_jobs: list[HandlerRun], engine: Engine
) -> None:
    kill_runs(engine, two_jobs[1].id)

    listed = jobhooks("runs", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert [line.split("\t")[:4] for line in lines] == [
        [str(two_jobs[1].id), "dead", "alert", "attempts=8"],
        [str(two_jobs[0].id), "pending", "mfa_prompt", "attempts=0"],
    ]
    assert lines[0].endswith("DeliveryFailed: NOTIFY_URL: HTTP 500")

    dead = jobhooks("runs", "list", "--state", "dead", "--json")
    assert [json.loads(line)["job_guid"] for line in dead.output.splitlines()] == ["JOB-b"]
    by_job = jobhooks("runs", "list", "--job-guid", "JOB-a", "--json")
    assert [json.loads(line)["handler"] for line in by_job.output.splitlines()] == ["mfa_prompt"]


def test_runs_retry_one_and_all_dead(
    jobhooks: Callable[..., Result], two_jobs: list[HandlerRun], engine: Engine
) -> None:
    first, second = two_jobs
    kill_runs(engine, first.id, second.id)

    one = jobhooks("runs", "retry", str(first.id))
    assert one.exit_code == 0, one.output
    assert f"re-queued run {first.id}" in one.output
    assert [(r.state, r.attempts) for r in rows(engine, HandlerRun)] == [
        ("pending", 0),
        ("dead", 8),
    ]

    again = jobhooks("runs", "retry", str(first.id))
    assert again.exit_code == 1
    assert "only a dead run can be retried" in again.output
    assert jobhooks("runs", "retry", "424242").exit_code == 1

    everything = jobhooks("runs", "retry", "--all-dead")
    assert everything.output.strip() == "re-queued 1 dead runs"
    assert {r.state for r in rows(engine, HandlerRun)} == {"pending"}


def test_runs_retry_needs_exactly_one_target(jobhooks: Callable[..., Result]) -> None:
    assert jobhooks("runs", "retry").exit_code == 2
    assert jobhooks("runs", "retry", "1", "--all-dead").exit_code == 2


def test_replay_reruns_handlers_of_current_events_with_the_same_key(
    jobhooks: Callable[..., Result],
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    engine: Engine,
) -> None:
    post_job(guid="JOB-a", status=2, updated_at="2026-11-25T10:00:00+00:00")
    post_job(guid="JOB-b", status=6, updated_at="2026-11-25T10:05:00+00:00")
    # Stale on arrival: JOB-b was already COMPLETED when this older CHALLENGED came in.
    post_job(guid="JOB-b", status=2, updated_at="2026-11-25T10:01:00+00:00")
    worker = make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)
    while worker.run_once():
        pass
    assert len(sink.requests) == 2

    replayed = jobhooks("replay", "--since", "2000-01-01T00:00:00Z")
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.strip() == ("2 events: 0 runs queued, 2 re-queued, 0 already waiting")
    while worker.run_once():
        pass
    assert len(sink.requests) == 4
    first, second = sink.requests[:2], sink.requests[2:]
    assert sorted(r.headers["webhook-id"] for r in first) == sorted(
        r.headers["webhook-id"] for r in second
    )
    assert [r.json()["type"] for r in second].count("job.mfa_prompt") == 1


def test_replay_filters_by_status_and_queues_newly_planned_handlers(
    jobhooks: Callable[..., Result], post_job: Callable[..., Any], engine: Engine
) -> None:
    post_job(guid="JOB-a", status=2)
    post_job(guid="JOB-b", status=3)

    only_challenged = jobhooks("replay", "--since", "2000-01-01", "--status", "CHALLENGED")
    assert only_challenged.output.strip() == (
        "1 events: 0 runs queued, 0 re-queued, 1 already waiting"
    )
    # A handler added to the plan since the event arrived gets its run on replay.
    widened = jobhooks(
        "replay", "--since", "2000-01-01", "--status", "3", HANDLERS="RECEIVED=alert"
    )
    assert widened.output.strip() == "1 events: 1 runs queued, 0 re-queued, 0 already waiting"
    assert [(r.job_guid, r.handler) for r in rows(engine, HandlerRun)] == [
        ("JOB-a", "mfa_prompt"),
        ("JOB-b", "alert"),
    ]
    nothing = jobhooks("replay", "--since", "2999-01-01T00:00:00Z")
    assert nothing.output.strip() == "0 events: 0 runs queued, 0 re-queued, 0 already waiting"


def test_replay_rejects_a_bad_time_or_status(jobhooks: Callable[..., Result]) -> None:
    assert jobhooks("replay", "--since", "yesterday").exit_code == 2
    assert jobhooks("replay", "--since", "2026-01-01", "--status", "NOPE").exit_code == 2


def post_member_status(client: FlaskClient, member: str, code: int, at: str) -> None:
    body = {
        "type": "CONNECTION_STATUS",
        "member_guid": member,
        "connection_status_id": code,
        "updated_at": at,
    }
    assert client.post(MEMBER_URL, json=body, headers=basic_header()).status_code == 204


def test_replay_members_queues_the_prompts_missed_and_skips_what_needs_none(
    jobhooks: Callable[..., Result], client: FlaskClient, engine: Engine
) -> None:
    post_member_status(client, "MBR-impeded", 7, "2026-11-25T10:00:00Z")
    post_member_status(client, "MBR-connected", 6, "2026-11-25T10:00:00Z")
    post_member_status(client, "MBR-late", 9, "2026-11-25T10:05:00Z")
    post_member_status(client, "MBR-late", 19, "2026-11-25T10:01:00Z")  # older: stale on arrival
    # As an install whose old status table never queued these prompts left them.
    with engine.begin() as connection:
        connection.execute(delete(HandlerRun))

    replayed = jobhooks("replay", "--members", "--since", "2000-01-01T00:00:00Z")

    assert replayed.exit_code == 0, replayed.output
    # The stale EXPIRED is not replayed: an older change never acts.
    assert "3 events: 1 runs queued, 0 re-queued, 0 already waiting" in replayed.output
    [run] = rows(engine, HandlerRun)
    [event] = rows(engine, MemberEvent, id=run.member_event_id)
    assert (run.handler, run.member_guid, event.connection_status) == (
        "user_action_required",
        "MBR-impeded",
        "IMPEDED",
    )


def test_replay_members_filters_by_connection_status_and_keeps_idempotency_keys(
    jobhooks: Callable[..., Result], client: FlaskClient, engine: Engine
) -> None:
    post_member_status(client, "MBR-a", 3, "2026-11-25T10:00:00Z")
    post_member_status(client, "MBR-b", 2, "2026-11-25T10:00:00Z")
    before = {run.member_guid: run for run in rows(engine, HandlerRun)}
    with engine.begin() as connection:
        connection.execute(update(HandlerRun).values(state="succeeded"))

    replayed = jobhooks("replay", "--members", "--since", "2000-01-01T00:00:00Z", "--status", "3")

    assert replayed.exit_code == 0, replayed.output
    after = {run.member_guid: run for run in rows(engine, HandlerRun)}
    assert (after["MBR-a"].state, after["MBR-b"].state) == ("pending", "succeeded")
    assert after["MBR-a"].idempotency_key == before["MBR-a"].idempotency_key
    assert jobhooks("replay", "--members", "--since", "2000-01-01", "--status", "NOPE").exit_code
