"""Folding each settled bucket's shards into one row changes no /stats answer, never waits on
ingest, and is done by the worker for recent buckets and by `jobhooks db maintain` for all."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner
from conftest import job_body
from db_rows import raw_stats, wait_until_a_query_waits_for_a_lock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.cli import cli
from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs import folding, rollups, round_statement
from service.jobs.deliveries import JobDelivery
from service.jobs.folding import FOLD_LOCK, FOLDED, KEY, fold_day, fold_settled
from service.jobs.ingest import ingest_jobs
from service.jobs.models import JobStatusCount
from service.jobs.queries import job_stats
from service.jobs.schemas import validate_job
from service.outbox.runner import maintain_once
from service.platform.db import make_engine, make_session_factory, run_in_transaction, transaction

START = datetime(2026, 11, 20, tzinfo=UTC)
SPAN = timedelta(days=3)
WRITERS = (0, 5, 11)
# How long a test waits for the writer or fold it started to block on a lock.
LOCK_WAIT_SECONDS = 10.0


@contextmanager
def writing_as(shard: int) -> Iterator[None]:
    """Ingest as the web process whose counts go to `shard`."""
    with pytest.MonkeyPatch.context() as patch:
        for module in (rollups, round_statement):
            patch.setattr(module, "writer_shard", lambda: shard)
        yield


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def deliver(
    sessions: sessionmaker[Session],
    database_url: str,
    bodies: Sequence[dict[str, Any]],
    received: datetime = START,
) -> None:
    plan = handler_plan(Settings(database_url=database_url))
    deliveries = []
    for n, body in enumerate(bodies):
        callback, raw = validate_job(body)
        deliveries.append(JobDelivery(callback, raw, received + timedelta(microseconds=n)))
    run_in_transaction(sessions, lambda session: ingest_jobs(session, deliveries, plan))


def callbacks(chance: random.Random, count: int, first: datetime, span: timedelta) -> list[Any]:
    """`count` status changes of 60 jobs, dated within [first, first + span)."""
    return [
        job_body(
            guid=f"JOB-{chance.randrange(60)}",
            institution_guid=chance.choice(("INS-a", "INS-b", None)),
            status=chance.randrange(10),
            status_name=None,
            updated_at=(
                first + timedelta(seconds=chance.randrange(int(span.total_seconds())))
            ).isoformat(),
        )
        for _ in range(count)
    ]


@pytest.fixture
def folded_midway(sessions: sessionmaker[Session], database_url: str) -> sessionmaker[Session]:
    """Three days written by three web processes, folded as of the middle of the span, then
    late callbacks into hours already folded, by one of the writers again."""
    chance = random.Random(20261203)
    for batch in range(30):
        with writing_as(WRITERS[batch % len(WRITERS)]):
            deliver(sessions, database_url, callbacks(chance, 12, START, SPAN))
    fold_settled(sessions, START + SPAN / 2, since=None)
    with writing_as(WRITERS[1]):
        deliver(sessions, database_url, callbacks(chance, 30, START, SPAN / 3))
    return sessions


window_edges = st.integers(min_value=-3600, max_value=int(SPAN.total_seconds()) + 3600)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=window_edges,
    second=window_edges,
    statuses=st.lists(st.integers(min_value=0, max_value=9), max_size=2, unique=True).map(sorted),
    top=st.integers(min_value=1, max_value=3),
)
def test_folded_and_unfolded_counts_together_equal_a_raw_count(
    folded_midway: sessionmaker[Session], first: int, second: int, statuses: list[int], top: int
) -> None:
    if first == second:
        second += 1
    since, until = sorted(START + timedelta(seconds=edge) for edge in (first, second))
    with folded_midway() as session:
        assert job_stats(session, since, until, statuses, top) == raw_stats(
            session, since, until, statuses, top
        )


def test_a_fold_leaves_one_row_a_key_and_the_same_answers(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    chance = random.Random(7)
    for shard in WRITERS:
        with writing_as(shard):
            deliver(sessions, database_url, callbacks(chance, 40, START, SPAN))
    windows = [(START, START + SPAN), (START + timedelta(hours=5), START + timedelta(days=2))]
    with sessions() as session:
        before = [job_stats(session, *window, (), top=10) for window in windows]
        rows_before = session.scalar(select(func.count()).select_from(JobStatusCount))

    folded = fold_settled(sessions, START + SPAN + timedelta(days=1), since=None)

    with sessions() as session:
        assert [job_stats(session, *window, (), top=10) for window in windows] == before
        counts = list(session.scalars(select(JobStatusCount)))
    assert {count.shard for count in counts} == {FOLDED}
    keys = Counter(tuple(getattr(count, column) for column in KEY) for count in counts)
    assert set(keys.values()) == {1}
    assert folded.rows == rows_before and not folded.days_left
    assert len(counts) < rows_before
    assert fold_settled(sessions, START + SPAN + timedelta(days=1), since=None).rows == 0


def shards_of(sessions: sessionmaker[Session], span: int, bucket: datetime) -> set[int]:
    c = JobStatusCount
    with sessions() as session:
        return set(
            session.scalars(select(c.shard).where(c.span_hours == span, c.bucket_start == bucket))
        )


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def test_the_worker_folds_settled_buckets_of_the_last_days_and_db_maintain_all(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    now = datetime.now(UTC)
    moments = {
        "current": now - timedelta(minutes=1),
        "settled": now - timedelta(hours=3),
        "old": now - timedelta(days=5),
    }
    for shard in WRITERS[:2]:
        with writing_as(shard):
            bodies = [
                job_body(guid=f"JOB-{name}-{shard}", updated_at=moment.isoformat())
                for name, moment in moments.items()
            ]
            deliver(sessions, database_url, bodies, received=now)
    old_day = moments["old"].replace(hour=0, minute=0, second=0, microsecond=0)

    maintain_once(sessions, now)

    assert shards_of(sessions, 1, hour_of(moments["current"])) == set(WRITERS[:2])
    assert shards_of(sessions, 1, hour_of(moments["settled"])) == {FOLDED}
    # Beyond the worker's look-back: left to `jobhooks db maintain`.
    assert shards_of(sessions, 1, hour_of(moments["old"])) == set(WRITERS[:2])
    assert shards_of(sessions, 24, old_day) == set(WRITERS[:2])

    said = CliRunner().invoke(cli, ["db", "maintain"], env={"DATABASE_URL": database_url})

    assert said.exit_code == 0, said.output
    assert "status count rows folded: " in said.output
    assert shards_of(sessions, 1, hour_of(moments["old"])) == {FOLDED}
    assert shards_of(sessions, 24, old_day) == {FOLDED}
    assert shards_of(sessions, 1, hour_of(moments["current"])) == set(WRITERS[:2])


def late_callback(status: int = 6) -> dict[str, Any]:
    """A callback dated in the first hour of START, folded long since."""
    return job_body(
        guid=f"JOB-late-{uuid4().hex}",
        institution_guid="INS-a",
        status=status,
        updated_at=(START + timedelta(minutes=20)).isoformat(),
    )


def total_in_first_hour(sessions: sessionmaker[Session]) -> tuple[object, object]:
    """The first hour's answer from the counts and from the events themselves."""
    window = (START, START + timedelta(hours=1))
    with sessions() as session:
        return job_stats(session, *window, (), top=10), raw_stats(session, *window)


@pytest.fixture
def postgres_sessions(sessions: sessionmaker[Session], database_url: str) -> sessionmaker[Session]:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: a fold and ingest never overlap")
    return sessions


def test_a_fold_skips_rows_a_writer_holds_and_does_not_wait(
    postgres_sessions: sessionmaker[Session], database_url: str
) -> None:
    sessions = postgres_sessions
    with writing_as(WRITERS[1]):
        deliver(sessions, database_url, [late_callback()])
    held = sessions()
    held.begin()
    plan = handler_plan(Settings(database_url=database_url))
    callback, raw = validate_job(late_callback())
    with writing_as(WRITERS[1]):
        # Adds to the same rows of WRITERS[1]: their locks stay held until `held` commits.
        ingest_jobs(held, [JobDelivery(callback, raw, START)], plan, one_statement=False)
    try:
        with transaction(sessions) as session:
            session.execute(text("SET LOCAL lock_timeout = '5s'"))
            folded = fold_day(session, START, START + timedelta(days=1))
        assert folded == 0  # every row of the hour the writer touched is held; none waited on
        assert shards_of(sessions, 1, START) == {WRITERS[1]}
    finally:
        held.commit()
        held.close()

    assert fold_day_committed(sessions) == 3  # the hour's three breakdowns, of one writer
    assert shards_of(sessions, 1, START) == {FOLDED}
    counted, raw_count = total_in_first_hour(sessions)
    assert counted == raw_count
    assert counted.total == 2  # type: ignore[attr-defined]


def fold_day_committed(sessions: sessionmaker[Session]) -> int | None:
    with transaction(sessions) as session:
        return fold_day(session, START, START + timedelta(days=1))


def test_a_writer_that_meets_a_fold_waits_for_it_and_is_counted(
    postgres_sessions: sessionmaker[Session], database_url: str
) -> None:
    sessions = postgres_sessions
    with writing_as(WRITERS[2]):
        deliver(sessions, database_url, [late_callback()])
    folding = sessions()
    folding.begin()
    assert fold_day(folding, START, START + timedelta(days=1)) > 0
    writer_done = threading.Event()

    def late_writer() -> None:
        with writing_as(WRITERS[2]):
            deliver(sessions, database_url, [late_callback()])
        writer_done.set()

    thread = threading.Thread(target=late_writer)
    try:
        thread.start()
        wait_until_a_query_waits_for_a_lock(sessions.kw["bind"], LOCK_WAIT_SECONDS)
        assert not writer_done.is_set()
    finally:
        folding.commit()
        folding.close()
    thread.join(timeout=30)

    assert writer_done.is_set()
    counted, raw_count = total_in_first_hour(sessions)
    assert counted == raw_count
    assert counted.total == 2  # type: ignore[attr-defined]


def test_a_fold_leaves_a_day_another_fold_holds_unless_told_to_wait(
    postgres_sessions: sessionmaker[Session], database_url: str
) -> None:
    sessions = postgres_sessions
    with writing_as(WRITERS[1]):
        deliver(sessions, database_url, [late_callback()])
    engine = sessions.kw["bind"]
    after_a_day = START + timedelta(days=1)
    with engine.connect() as other_fold:
        other_fold.execute(text("SELECT pg_advisory_lock(:key)"), {"key": FOLD_LOCK})
        left = fold_settled(sessions, after_a_day, since=START)
        assert (left.rows, left.days_left) == (0, [START])
        waited: list[folding.Folded] = []
        waiting = threading.Thread(
            target=lambda: waited.append(fold_settled(sessions, after_a_day, START, wait=True))
        )
        waiting.start()
        wait_until_a_query_waits_for_a_lock(engine, LOCK_WAIT_SECONDS)
        assert not waited
        other_fold.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": FOLD_LOCK})
    waiting.join(timeout=30)

    assert waited[0].rows == 3 and not waited[0].days_left
    assert shards_of(sessions, 1, START) == {FOLDED}


def test_a_fold_gives_a_day_up_rather_than_wait_on_a_purge(
    postgres_sessions: sessionmaker[Session], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge deleting the hour's folded counts holds the row this fold would add to: waiting
    on each other, the two would deadlock, so the fold leaves the day for later."""
    sessions = postgres_sessions
    monkeypatch.setattr(folding, "ROW_WAIT", "100ms")
    for _ in range(2):  # folded once, then a late callback for the same hour
        with writing_as(WRITERS[1]):
            deliver(sessions, database_url, [late_callback()])
        fold_day_committed(sessions)
    with writing_as(WRITERS[1]):
        deliver(sessions, database_url, [late_callback()])
    purge = sessions()
    purge.begin()
    purge.execute(text("DELETE FROM job_status_counts WHERE shard = :folded"), {"folded": FOLDED})
    try:
        left = fold_settled(sessions, START + timedelta(days=1), since=START, wait=True)
    finally:
        purge.rollback()
        purge.close()

    assert (left.rows, left.days_left) == (0, [START])
    assert shards_of(sessions, 1, START) == {FOLDED, WRITERS[1]}
    counted, raw_count = total_in_first_hour(sessions)
    assert counted == raw_count
    assert counted.total == 3  # type: ignore[attr-defined]
