"""Deliveries committed together store exactly what they would have stored one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import job_body
from db_rows import count, rows
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.commits import job_batch_committer
from service.jobs.ingest import HandlersFor, JobDelivery, ingest_jobs
from service.jobs.models import Job, JobEvent
from service.jobs.schemas import JobCallback, validate_job
from service.members.cross_source import DEFAULT_RULES
from service.members.models import MemberPrompt
from service.outbox.models import HandlerRun
from service.platform.db import make_engine, make_session_factory, run_in_transaction
from service.platform.outcomes import IngestResult, Outcome

RECEIVED = datetime(2026, 11, 25, 10, 1, tzinfo=UTC)


def delivery(prefix: str, job: str, status: int, minute: int, **fields: Any) -> JobDelivery:
    """A validated delivery; `prefix` keeps two runs of one scenario apart in one database."""
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
        delivery(prefix, "a", 3, 3),
        delivery(prefix, "b", 2, 2, member="shared"),  # MX's retry of the same status change
        delivery(prefix, "c", 6, 9),
        delivery(prefix, "c", 3, 4),  # arrives after a newer one: history, not current
        delivery(prefix, "d", 6, 5, member="shared"),  # ends the shared member's challenge
        delivery(prefix, "e", 9, 6),
        delivery(prefix, "a", 6, 7),
        delivery(prefix, "f", 2, 8),
        delivery(prefix, "g", 2, 8, member="f"),  # another job of f's member, challenged too
    ]


def stored(engine: Engine, prefix: str) -> dict[str, Any]:
    """What the database holds for one prefix, with ids and the prefix taken out."""

    def bare(value: str | None) -> str | None:
        return value.removeprefix(prefix) if value else value

    events = [
        (bare(event.job_guid), event.status, event.updated_at)
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
    return {"events": sorted(events), "jobs": jobs, "runs": runs, "prompts": prompts}


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
