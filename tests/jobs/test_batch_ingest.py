"""Deliveries committed together store exactly what they would have stored one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import job_body
from db_rows import count, rows
from mx_bodies import status_body
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.commits import job_batch_committer
from service.jobs.deliveries import HandlersFor, JobDelivery
from service.jobs.ingest import ingest_jobs
from service.jobs.models import Job, JobEvent, JobStatusCount
from service.jobs.round_statement import fits_one_statement
from service.jobs.schemas import JobCallback, validate_job
from service.members.cross_source import DEFAULT_RULES
from service.members.ingest import MemberDelivery, ingest_member_event
from service.members.models import Member, MemberPrompt
from service.members.schemas import validate_connection_status
from service.members.statuses import connection_handlers
from service.outbox.models import HandlerRun
from service.platform.db import (
    make_engine,
    make_session_factory,
    run_in_transaction,
    transaction,
)
from service.platform.outcomes import IngestResult, Outcome

RECEIVED = datetime(2026, 11, 25, 10, 1, tzinfo=UTC)


def delivery(prefix: str, job: str, status: int, minute: int, **fields: Any) -> JobDelivery:
    """A validated delivery; `prefix` keeps two runs of one scenario apart in one database."""
    fields.setdefault("institution_guid", f"{prefix}INS")
    body = job_body(
        guid=f"{prefix}JOB-{job}",
        member_guid=f"{prefix}MBR-{fields.pop('member', job)}",
        status=status,
        status_name=None,
        updated_at=f"2026-11-25T10:{minute:02d}:00Z",
        **fields,
    )
    callback, raw = validate_job(body)
    return JobDelivery(job=callback, raw=raw, received_at=RECEIVED + timedelta(seconds=minute))


def scenario(prefix: str) -> list[JobDelivery]:
    """A burst as MX sends it: progress, a retry, a late older event, a job seen twice, a challenge
    and a completion of one member, and one job CHALLENGED twice in a row."""
    return [
        delivery(prefix, "a", 0, 1),
        delivery(prefix, "b", 2, 2, member="shared"),
        delivery(prefix, "a", 3, 3, institution_guid=None),  # counted under the job's
        delivery(prefix, "b", 2, 2, member="shared"),  # MX's retry of the same status change
        delivery(prefix, "c", 6, 9),
        delivery(prefix, "c", 3, 4),  # arrives after a newer one: history, not current
        delivery(prefix, "d", 6, 5, member="shared"),  # ends the shared member's challenge
        delivery(prefix, "e", 9, 6, institution_guid=None),  # no institution known at all
        delivery(prefix, "a", 6, 7),
        delivery(prefix, "f", 2, 8),
        delivery(prefix, "g", 2, 8, member="f"),  # another job of f's member, challenged too
    ]


def stored(engine: Engine, prefix: str) -> dict[str, Any]:
    """What the database holds for one prefix, with ids and the prefix taken out."""

    def bare(value: str | None) -> str | None:
        return value.removeprefix(prefix) if value else value

    events = [
        (bare(event.job_guid), event.status, event.updated_at, bare(event.institution_key))
        for event in rows(engine, JobEvent)
        if event.job_guid.startswith(prefix)
    ]
    jobs = sorted(
        (bare(job.guid), job.status, job.updated_at)
        for job in rows(engine, Job)
        if job.guid.startswith(prefix)
    )
    runs = sorted(
        (bare(run.job_guid), run.handler, run.state)
        for run in rows(engine, HandlerRun)
        if run.job_guid and run.job_guid.startswith(prefix)
    )
    prompts = sorted(
        (bare(prompt.member_guid), prompt.handler, prompt.source)
        for prompt in rows(engine, MemberPrompt)
        if prompt.member_guid.startswith(prefix)
    )
    # The per-status breakdown names no institution, so two prefixes share it; the rollup
    # tests check it against a raw count.
    counts: dict[tuple[int, int, datetime, int, str], int] = {}
    for bucket in rows(engine, JobStatusCount):
        if bucket.institution_key.startswith(prefix):
            institution = bucket.institution_key.removeprefix(prefix)
            key = (
                bucket.span_hours,
                bucket.breakdown,
                bucket.bucket_start,
                bucket.status,
                institution,
            )
            counts[key] = counts.get(key, 0) + bucket.events
    return {
        "events": sorted(events),
        "jobs": jobs,
        "runs": runs,
        "prompts": prompts,
        "status_counts": sorted(counts.items()),
    }


@dataclass(frozen=True)
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    plan: HandlersFor

    def ingest(self, batch: list[JobDelivery]) -> list[IngestResult]:
        return run_in_transaction(
            self.sessions, lambda session: ingest_jobs(session, batch, self.plan)
        )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    yield Store(
        engine, make_session_factory(engine), handler_plan(Settings(database_url=database_url))
    )
    engine.dispose()


def outcomes(results: list[IngestResult]) -> list[tuple[Outcome, int]]:
    return [(result.outcome, len(result.handler_run_ids)) for result in results]


def test_a_batch_stores_what_one_by_one_would(store: Store) -> None:
    one_by_one = [store.ingest([d])[0] for d in scenario("seq-")]
    batched = store.ingest(scenario("bat-"))
    assert outcomes(batched) == outcomes(one_by_one)
    assert stored(store.engine, "bat-") == stored(store.engine, "seq-")
    assert [result.outcome for result in batched] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.ACCEPTED,
        Outcome.STALE,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
    ]


def test_run_ids_belong_to_their_own_delivery(store: Store) -> None:
    batch = [delivery("", str(n), status, n) for n, status in enumerate([2, 0, 6, 9, 8, 2])]
    results = store.ingest(batch)
    for sent, result in zip(batch, results, strict=True):
        runs = rows(store.engine, HandlerRun, event_id=result.event_id)
        assert sorted(run.id for run in runs) == sorted(result.handler_run_ids)
        assert {run.job_guid for run in runs} <= {sent.job.guid}
        assert sorted(run.handler for run in runs) == sorted(store.plan(sent.job.status))


def test_one_delivery_the_database_refuses_fails_alone(store: Store) -> None:
    """Validation keeps such values out today; the batch must not depend on that."""
    commit_batch = job_batch_committer(store.sessions, store.plan, DEFAULT_RULES)
    good = delivery("", "good", 2, 1)
    later = delivery("", "later", 6, 2)
    unstorable_job = JobCallback.model_construct(
        **{**good.job.__dict__, "guid": "JOB-bad", "status": 2**70}
    )
    unstorable = JobDelivery(job=unstorable_job, raw={"guid": "JOB-bad"}, received_at=RECEIVED)
    first, refused, last = commit_batch([good, unstorable, later])
    assert isinstance(first, IngestResult) and first.outcome is Outcome.ACCEPTED
    assert isinstance(refused, Exception)
    assert isinstance(last, IngestResult) and last.outcome is Outcome.ACCEPTED
    assert count(store.engine, JobEvent) == 2
    assert count(store.engine, Job, guid="JOB-bad") == 0


@pytest.mark.parametrize("batch_size", [1, 64])
def test_every_delivery_of_a_full_batch_is_committed(store: Store, batch_size: int) -> None:
    batch = [delivery("", str(n), n % 10, n % 60) for n in range(batch_size)]
    results = store.ingest(batch)
    assert all(result.outcome is Outcome.ACCEPTED for result in results)
    assert count(store.engine, JobEvent) == batch_size
    assert count(store.engine, Job) == batch_size
    expected_runs = sum(len(store.plan(d.job.status)) for d in batch)
    assert count(store.engine, HandlerRun) == expected_runs


def simple_rounds(prefix: str) -> list[list[JobDelivery]]:
    """Batches in which every round fits one statement: history, retries, stale events, prompts
    held back by a recent connection-status prompt or not, challenges ended, institutions
    learned, and a job seen twice in one batch (two rounds)."""
    return [
        [
            delivery(prefix, "a", 0, 1, institution_guid=f"{prefix}INS-1"),
            delivery(prefix, "b", 2, 2, member="held"),  # held back: prompted by a status
            delivery(prefix, "c", 2, 3, member="free"),  # that status prompt is old: prompts
            delivery(prefix, "d", 9, 4),
            delivery(prefix, "a", 6, 5),  # second round of this batch
        ],
        [
            delivery(prefix, "a", 6, 5),  # MX's retry
            delivery(prefix, "a", 3, 2),  # older than the current state: history only
            delivery(prefix, "e", 6, 6, member="free"),  # ends free's challenge
            delivery(prefix, "f", 8, 7),
        ],
        [delivery(prefix, "g", 2, 8, member="free")],  # a new challenge after the end
    ]


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[Store]:
    engine = make_engine(postgres_url)
    yield Store(
        engine, make_session_factory(engine), handler_plan(Settings(database_url=postgres_url))
    )
    engine.dispose()


def test_one_statement_stores_what_the_steps_store(postgres_store: Store) -> None:
    store = postgres_store
    for prefix in ("one-", "steps-"):
        seed_member_and_prompts(store, prefix)
    for batch in simple_rounds("one-"):
        wired = [store.plan(d.job.status) for d in batch]
        assert fits_one_statement(batch, wired)

    def ingest(batch: list[JobDelivery], one_statement: bool) -> list[IngestResult]:
        return run_in_transaction(
            store.sessions,
            lambda session: ingest_jobs(
                session, batch, store.plan, DEFAULT_RULES, one_statement=one_statement
            ),
        )

    one = [outcomes(ingest(batch, True)) for batch in simple_rounds("one-")]
    steps = [outcomes(ingest(batch, False)) for batch in simple_rounds("steps-")]
    assert one == steps
    assert stored(store.engine, "one-") == stored(store.engine, "steps-")
    learned = institutions(store.engine, "one-")
    assert learned == institutions(store.engine, "steps-")
    assert learned["MBR-a"] == "INS-1"
    # The held member was not prompted again; the free one was, ended, and was prompted anew.
    runs = stored(store.engine, "one-")["runs"]
    assert ("JOB-b", "mfa_prompt", "pending") not in runs
    assert ("JOB-c", "mfa_prompt", "pending") in runs
    assert ("JOB-g", "mfa_prompt", "pending") in runs


def seed_member_and_prompts(store: Store, prefix: str) -> None:
    """A member with no institution yet, and connection-status prompts recent and old."""
    window = DEFAULT_RULES.prompt_window
    for member, at in (("a", RECEIVED), ("held", RECEIVED), ("free", RECEIVED - 2 * window)):
        callback, raw = validate_connection_status(
            status_body(member_guid=f"{prefix}MBR-{member}", user_guid=f"{prefix}USR")
        )
        with transaction(store.sessions) as session:
            ingest_member_event(
                session,
                MemberDelivery(report=callback.report(), raw=raw, received_at=at),
                connection_handlers,
                DEFAULT_RULES,
            )


def institutions(engine: Engine, prefix: str) -> dict[str, str]:
    """Each member's institution as learned from its jobs, with the prefix taken out."""
    return {
        member.guid.removeprefix(prefix): member.institution_guid.removeprefix(prefix)
        for member in rows(engine, Member)
        if member.guid.startswith(prefix) and member.institution_guid is not None
    }


def test_a_round_that_would_write_one_prompt_twice_takes_the_steps() -> None:
    twice = [delivery("", "x", 2, 1, member="m"), delivery("", "y", 2, 2, member="m")]
    ended_and_prompted = [delivery("", "x", 2, 1, member="m"), delivery("", "y", 6, 2, member="m")]
    apart = [delivery("", "x", 2, 1, member="m"), delivery("", "y", 6, 2, member="n")]
    plan = handler_plan(Settings())
    assert not fits_one_statement(twice, [plan(d.job.status) for d in twice])
    assert not fits_one_statement(
        ended_and_prompted, [plan(d.job.status) for d in ended_and_prompted]
    )
    assert fits_one_statement(apart, [plan(d.job.status) for d in apart])
