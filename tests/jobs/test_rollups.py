"""/stats from the hourly rollups equals a count of the events themselves, for any window."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import job_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_jobs
from service.jobs.models import JobEvent
from service.jobs.queries import job_stats, status_counts, status_counts_statement, summarize_counts
from service.jobs.schemas import validate_job
from service.platform.db import make_engine, make_session_factory, run_in_transaction

START = datetime(2026, 11, 20, tzinfo=UTC)
SPAN = timedelta(days=3)
INSTITUTIONS = ("INS-a", "INS-b", None)


@pytest.fixture
def history(database_url: str) -> Iterator[sessionmaker[Session]]:
    """400 status changes of 120 jobs over three days, sent in batches as MX would, retries
    included; each job keeps one institution (or none)."""
    engine: Engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    plan = handler_plan(Settings(database_url=database_url))
    chance = random.Random(20261202)
    deliveries = []
    for n in range(400):
        job = chance.randrange(120)
        moment = START + timedelta(seconds=chance.randrange(int(SPAN.total_seconds())))
        body = job_body(
            guid=f"JOB-{job}",
            member_guid=f"MBR-{job}",
            institution_guid=INSTITUTIONS[job % 3],
            status=chance.randrange(10),
            status_name=None,
            updated_at=moment.isoformat(),
        )
        callback, raw = validate_job(body)
        deliveries.append(JobDelivery(callback, raw, START + timedelta(seconds=n)))
    deliveries += chance.sample(deliveries, 40)  # MX's retries: duplicates, never counted twice
    for start in range(0, len(deliveries), 16):
        batch = deliveries[start : start + 16]
        run_in_transaction(sessions, lambda session, b=batch: ingest_jobs(session, b, plan))
    yield sessions
    engine.dispose()


def raw_stats(session: Session, since: datetime, until: datetime) -> object:
    rows = [tuple(row) for row in session.execute(status_counts_statement(since, until, ()))]
    return summarize_counts(rows, since, until, top=10)  # type: ignore[arg-type]


window_edges = st.integers(min_value=-2 * 3600, max_value=int(SPAN.total_seconds()) + 2 * 3600)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=window_edges, second=window_edges)
def test_stats_from_rollups_equal_a_raw_count(
    history: sessionmaker[Session], first: int, second: int
) -> None:
    if first == second:
        second += 1
    since, until = sorted(START + timedelta(seconds=edge) for edge in (first, second))
    with history() as session:
        assert job_stats(session, since, until, (), top=10) == raw_stats(session, since, until)


def test_whole_hours_and_a_whole_span_agree(history: sessionmaker[Session]) -> None:
    with history() as session:
        for since, until in (
            (START, START + SPAN),
            (START + timedelta(hours=5), START + timedelta(hours=6)),
            (START - timedelta(days=1), START + timedelta(days=5)),
        ):
            rolled = job_stats(session, since, until, (), top=10)
            assert rolled == raw_stats(session, since, until)
        total = sum(count.count for count in status_counts(session, START, START + SPAN))
        stored = session.scalar(select(func.count()).select_from(JobEvent))
        assert total == stored
        assert 390 <= total <= 400  # the 40 retries added nothing


def test_an_hour_is_a_utc_hour_whatever_offset_mx_sends(database_url: str) -> None:
    """10:45+05:30 is 05:15 UTC: counted in the 05:00 UTC hour on both paths."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    plan = handler_plan(Settings(database_url=database_url))
    callback, raw = validate_job(job_body(guid="JOB-ist", updated_at="2026-11-25T10:45:00+05:30"))
    delivery = JobDelivery(callback, raw, START)
    run_in_transaction(sessions, lambda session: ingest_jobs(session, [delivery], plan))
    try:
        with sessions() as session:
            stats = job_stats(
                session,
                datetime(2026, 11, 25, 5, tzinfo=UTC),
                datetime(2026, 11, 25, 6, tzinfo=UTC),
                (),
                top=10,
            )
        assert stats.total == 1
    finally:
        engine.dispose()
