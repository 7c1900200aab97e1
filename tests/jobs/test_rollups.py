"""/stats from the hourly rollups equals a count of the events themselves, for any window."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import job_body
from db_rows import raw_stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_jobs
from service.jobs.models import JobEvent, JobStatusCount
from service.jobs.queries import job_stats, status_counts
from service.jobs.rollups import counted_window
from service.jobs.schemas import StatsOut, validate_job
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
            # A callback may leave the institution out: counted under the job's, if known yet.
            institution_guid=INSTITUTIONS[job % 3] if chance.random() < 0.75 else None,
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


window_edges = st.integers(min_value=-2 * 3600, max_value=int(SPAN.total_seconds()) + 2 * 3600)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=window_edges,
    second=window_edges,
    statuses=st.lists(st.integers(min_value=0, max_value=9), max_size=3, unique=True).map(sorted),
    top=st.integers(min_value=1, max_value=4),
)
def test_stats_from_rollups_equal_a_raw_count(
    history: sessionmaker[Session], first: int, second: int, statuses: list[int], top: int
) -> None:
    """Over any window, narrowed to any statuses, listing any number of institutions."""
    if first == second:
        second += 1
    since, until = sorted(START + timedelta(seconds=edge) for edge in (first, second))
    with history() as session:
        assert job_stats(session, since, until, statuses, top) == raw_stats(
            session, since, until, statuses, top
        )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=window_edges,
    length=st.integers(min_value=3601, max_value=int(SPAN.total_seconds())),
)
def test_a_widened_window_counts_exactly_its_whole_hours(
    history: sessionmaker[Session], start: int, length: int
) -> None:
    asked = START + timedelta(seconds=start)
    since, until = counted_window(asked, asked + timedelta(seconds=length), exact=False)
    assert since <= asked and until >= asked + timedelta(seconds=length)
    assert since.minute == since.second == until.minute == until.second == 0
    with history() as session:
        assert job_stats(session, since, until, (), top=10) == raw_stats(session, since, until)


def test_every_breakdown_of_every_day_is_the_sum_of_its_hours(
    history: sessionmaker[Session],
) -> None:
    with history() as session:
        hours: Counter[tuple[object, ...]] = Counter()
        days: Counter[tuple[object, ...]] = Counter()
        for bucket in session.scalars(select(JobStatusCount)):
            key = (bucket.breakdown, bucket.status, bucket.institution_key)
            if bucket.span_hours == 1:
                hours[bucket.bucket_start.replace(hour=0), *key] += bucket.events
            else:
                days[bucket.bucket_start, *key] += bucket.events
    assert days == hours
    assert len({day for day, *_ in days}) >= 3
    # Each breakdown holds every event once.
    per_breakdown: Counter[object] = Counter()
    for (_, breakdown, _, _), events in days.items():
        per_breakdown[breakdown] += events
    assert per_breakdown[0] == per_breakdown[1] == per_breakdown[2] > 0


def test_the_window_counted(history: sessionmaker[Session]) -> None:
    at = START + timedelta(hours=7, minutes=20, seconds=5)
    assert counted_window(at, at + timedelta(minutes=60), exact=False) == (
        at,
        at + timedelta(minutes=60),
    )
    assert counted_window(at, at + timedelta(hours=30), exact=False) == (
        START + timedelta(hours=7),
        START + timedelta(hours=38),
    )
    assert counted_window(at, at + timedelta(days=8), exact=False) == (
        START,
        START + timedelta(days=9),
    )
    assert counted_window(at, at + timedelta(hours=30), exact=True) == (
        at,
        at + timedelta(hours=30),
    )
    on_the_hour = START + timedelta(hours=7)
    assert counted_window(on_the_hour, on_the_hour + timedelta(days=2), exact=False) == (
        on_the_hour,
        on_the_hour + timedelta(days=2),
    )


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


@pytest.mark.parametrize("minutes_past", [10, 40])
def test_the_last_hour_counts_exactly_beside_events_dated_ahead(
    database_url: str, minutes_past: int
) -> None:
    """The default window, [now - 1h, now), at 10 and at 40 past: parts of it are counted as
    their hour less the rest of the hour, and the rest holds what MX dated ahead of our clock
    (and, at 10 past, the first minutes of the hour before)."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    plan = handler_plan(Settings(database_url=database_url))
    ten = START + timedelta(hours=10)
    now = ten + timedelta(minutes=minutes_past)
    minutes = (-70, -55, -40, -10, 2, 8, 30, 45, 55, 70)  # from 10:00; four in either window
    for n, offset in enumerate(minutes):
        at = ten + timedelta(minutes=offset)
        body = job_body(guid=f"JOB-{n}", status=n % 3, updated_at=at.isoformat())
        callback, raw = validate_job(body)
        delivery = JobDelivery(callback, raw, now)
        run_in_transaction(sessions, lambda session, d=delivery: ingest_jobs(session, [d], plan))
    try:
        with sessions() as session:
            stats = job_stats(session, now - timedelta(hours=1), now, (), top=10, now=now)
            assert stats == raw_stats(session, now - timedelta(hours=1), now)
        assert stats.total == 4
    finally:
        engine.dispose()


def test_a_short_window_counts_each_event_under_the_institution_its_callback_named(
    database_url: str,
) -> None:
    """Counted from the events (an hour or less), as the rollups count them: the institution each
    callback named, else the job's, which is also how an event stored before the events kept
    their own (migration 0012) is counted."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    plan = handler_plan(Settings(database_url=database_url))
    moment = START + timedelta(minutes=10)
    bodies = [
        job_body(guid="JOB-moved", institution_guid="INS-a", status=0),
        job_body(guid="JOB-moved", institution_guid="INS-b", status=1),
        job_body(guid="JOB-unnamed", institution_guid="INS-c", status=0),
        job_body(guid="JOB-unnamed", institution_guid=None, status=1),
    ]
    for n, body in enumerate(bodies):
        at = moment + timedelta(seconds=n)
        callback, raw = validate_job({**body, "updated_at": at.isoformat()})
        delivery = JobDelivery(callback, raw, moment + timedelta(seconds=n))
        run_in_transaction(sessions, lambda session, d=delivery: ingest_jobs(session, [d], plan))
    hour = (START, START + timedelta(hours=1))  # from the rollups
    minutes = (START + timedelta(minutes=5), START + timedelta(minutes=30))  # from the events
    try:
        with sessions() as session:
            assert job_stats(session, *hour, (), top=10) == raw_stats(session, *hour)
            assert per_institution(job_stats(session, *minutes, (), top=10)) == {
                ("INS-a", 0): 1,
                ("INS-b", 1): 1,
                ("INS-c", 0): 1,
                ("INS-c", 1): 1,
            }
        with sessions.begin() as session:
            session.execute(update(JobEvent).values(institution_key=None))
        with sessions() as session:
            assert per_institution(job_stats(session, *minutes, (), top=10)) == {
                ("INS-b", 0): 1,
                ("INS-b", 1): 1,
                ("INS-c", 0): 1,
                ("INS-c", 1): 1,
            }
    finally:
        engine.dispose()


def per_institution(stats: StatsOut) -> dict[tuple[str | None, int], int]:
    return {
        (institution.institution_guid, status.status): status.count
        for institution in stats.by_institution
        for status in institution.by_status
    }
