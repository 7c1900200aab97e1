"""Retention keeps what the policy keeps and nothing else: on PostgreSQL by dropping whole month
partitions, on SQLite by batched DELETEs; either way the same rows remain."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import job_body
from db_rows import raw_stats, rows
from sqlalchemy import delete, text, update
from sqlalchemy.engine import Engine

from service.jobs.deliveries import JobDelivery
from service.jobs.folding import fold_settled
from service.jobs.ingest import ingest_job
from service.jobs.models import Job, JobEvent, JobStatusCount
from service.jobs.queries import job_stats
from service.jobs.rollups import day_of
from service.jobs.schemas import JobCallback
from service.outbox.models import HandlerRun, RunState
from service.outbox.runner import Retention, maintain_once
from service.platform.db import make_session_factory, transaction
from service.platform.partitions import RETIRED_PREFIX, maintain, month_start
from service.webhooks import retention
from service.webhooks.retention import purge

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=200)
CUTOFF = NOW - timedelta(days=90)
NINETY_DAYS = timedelta(days=90).total_seconds()


def handlers_for(status: int) -> tuple[str, ...]:
    return ("alert",) if status == 9 else ()


def deliver(engine: Engine, guid: str, status: int, at: datetime) -> None:
    raw = job_body(guid=guid, status=status, updated_at=at.isoformat(), finished_at=None)
    with transaction(make_session_factory(engine)) as session:
        ingest_job(session, JobDelivery(JobCallback.model_validate(raw), raw, at), handlers_for)


def history(engine: Engine) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for event in rows(engine, JobEvent):
        found.setdefault(event.job_guid, []).append(event.status)
    return found


def test_purge_drops_old_history_and_keeps_what_the_policy_keeps(engine: Engine) -> None:
    postgresql = engine.dialect.name == "postgresql"
    if postgresql:  # months of their own for the old history, as the worker made them then
        with transaction(make_session_factory(engine)) as session:
            maintain(session, LONG_AGO, ahead=1)
    deliver(engine, "JOB-finished", 1, LONG_AGO)
    deliver(engine, "JOB-finished", 6, LONG_AGO + timedelta(minutes=1))
    deliver(engine, "JOB-unfinished", 1, LONG_AGO)
    deliver(engine, "JOB-unfinished", 2, LONG_AGO + timedelta(minutes=1))
    deliver(engine, "JOB-dead-run", 9, LONG_AGO)
    deliver(engine, "JOB-recent", 6, NOW)
    with engine.begin() as connection:
        connection.execute(update(HandlerRun).values(state=RunState.DEAD))
    # Filed in the old month, finished only now.
    deliver(engine, "JOB-long", 1, LONG_AGO)
    deliver(engine, "JOB-long", 6, NOW)

    result = purge(make_session_factory(engine), CUTOFF)

    assert history(engine) == {
        "JOB-unfinished": [2],  # its current state: the job is not finished
        "JOB-dead-run": [9],  # owed to a dead run an operator may retry
        "JOB-recent": [6],
        "JOB-long": [6],
    }
    assert {job.guid for job in rows(engine, Job)} == {
        "JOB-unfinished",
        "JOB-dead-run",
        "JOB-recent",
        "JOB-long",
    }
    assert [run.job_guid for run in rows(engine, HandlerRun)] == ["JOB-dead-run"]
    # PostgreSQL drops the finished job with its month; SQLite deletes it.
    assert result.jobs_retired == (0 if postgresql else 1)
    # The status counts of the old events went with them; the recent one is still counted.
    counted = {(count.breakdown, count.bucket_start) for count in rows(engine, JobStatusCount)}
    assert {bucket for _, bucket in counted} == {
        NOW.replace(minute=0, second=0, microsecond=0),
        NOW.replace(hour=0, minute=0, second=0, microsecond=0),
    }
    if postgresql:
        month = f"{month_start(LONG_AGO):%Y_%m}"
        assert {
            f"job_events_p{month}",
            f"handler_runs_p{month}",
            f"job_status_counts_p{month}",
            f"jobs_p{month}",
        } <= set(result.partitions_dropped)
        kept = {"jobs": 3, "handler_runs": 1, "job_events": 2, "member_events": 0}
        assert result.rows_kept == {**kept, "job_status_counts": 0}
        with engine.connect() as connection:
            for table in ("job_events", "jobs"):
                kept_in = connection.execute(
                    text(
                        f"SELECT DISTINCT tableoid::regclass::text FROM {table}"  # noqa: S608
                        " WHERE filed_at < :c"
                    ),
                    {"c": CUTOFF},
                ).scalars()
                assert set(kept_in) == {f"{table}_default"}
        # The months are out of every query at once; their files wait for maintenance.
        retired = {f"{RETIRED_PREFIX}{name}" for name in result.partitions_dropped}
        assert retired <= retired_tables(engine)
        with transaction(make_session_factory(engine)) as session:
            maintenance = maintain(session, NOW)
        assert retired <= set(maintenance.dropped)
        assert retired_tables(engine) == set()
    else:
        assert result.rows_deleted["job_events"] == 4


def retired_tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT relname FROM pg_class WHERE starts_with(relname, :prefix)"),
                {"prefix": RETIRED_PREFIX},
            ).scalars()
        )


def test_purge_with_nothing_old_removes_nothing(engine: Engine) -> None:
    deliver(engine, "JOB-recent", 6, NOW)

    result: Any = purge(make_session_factory(engine), CUTOFF)

    assert result.partitions_dropped == [] and result.jobs_retired == 0
    assert history(engine) == {"JOB-recent": [6]}


@pytest.mark.parametrize("connections", [1, 3], ids=["one-connection", "three-connections"])
@pytest.mark.parametrize("most", [2, 8], ids=["batches-of-two", "growing-batches"])
def test_jobs_retire_across_batch_boundaries_with_equal_and_missing_times(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, most: int, connections: int
) -> None:
    """Batches of two (or, on PostgreSQL, of two growing to eight) walk (updated_at, guid): a
    boundary inside a run of equal updated_at skips and repeats nothing, and a job without an
    updated_at goes by when it arrived; so too with batches deleted on three connections at
    once (PostgreSQL; SQLite deletes them one by one)."""
    monkeypatch.setattr(retention, "JOBS_PER_BATCH", 2)
    monkeypatch.setattr(retention, "JOBS_MOST_PER_BATCH", most)
    monkeypatch.setattr(retention, "JOBS_BATCH_SECONDS", 3600.0)  # every batch is quick
    old = LONG_AGO.replace(microsecond=0)
    same_instant = [stored_job(f"JOB-{letter}", old, finished_at=old) for letter in "abdegh"]
    with transaction(make_session_factory(engine)) as session:
        session.add_all(same_instant)
        session.add_all(
            [
                stored_job("JOB-c-unfinished", old, status=2),
                stored_job("JOB-f-owes-a-dead-run", old, finished_at=old),
                stored_job("JOB-denied", old + timedelta(seconds=1), status=8),
                stored_job("JOB-after-cutoff", CUTOFF + timedelta(seconds=1), finished_at=old),
                stored_job("JOB-undated-1", None, finished_at=old, arrived=old),
                stored_job("JOB-undated-2", None, status=9, arrived=old),
                stored_job("JOB-undated-3", None, finished_at=old, arrived=old),
                stored_job("JOB-undated-4-unfinished", None, status=2, arrived=old),
                stored_job("JOB-undated-5-recent", None, finished_at=old, arrived=NOW),
            ]
        )
        session.add(dead_run("JOB-f-owes-a-dead-run", old))

    result = purge(make_session_factory(engine), CUTOFF, connections)

    assert sorted(job.guid for job in rows(engine, Job)) == [
        "JOB-after-cutoff",
        "JOB-c-unfinished",
        "JOB-f-owes-a-dead-run",
        "JOB-undated-4-unfinished",
        "JOB-undated-5-recent",
    ]
    assert result.jobs_retired == 10


def test_many_batches_on_several_connections_retire_exactly_the_finished_jobs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of old jobs at random times, some unfinished or owing a dead run, walked in
    batches of three growing to twenty, four of them deleted at once."""
    monkeypatch.setattr(retention, "JOBS_PER_BATCH", 3)
    monkeypatch.setattr(retention, "JOBS_MOST_PER_BATCH", 20)
    monkeypatch.setattr(retention, "JOBS_BATCH_SECONDS", 3600.0)
    chance = random.Random(20261202)
    stored: list[Job | HandlerRun] = []
    kept = set()
    for n in range(600):
        at = LONG_AGO + timedelta(seconds=chance.randrange(5_000))
        guid = f"JOB-{n:03}"
        fate = chance.random()
        if fate < 0.1:
            stored.append(stored_job(guid, at, status=2))
            kept.add(guid)
        elif fate < 0.15:
            stored.append(stored_job(guid, at, finished_at=at))
            stored.append(dead_run(guid, at))
            kept.add(guid)
        else:
            stored.append(stored_job(guid, at, finished_at=at))
    with transaction(make_session_factory(engine)) as session:
        session.add_all(stored)

    result = purge(make_session_factory(engine), CUTOFF, connections=4)

    assert {job.guid for job in rows(engine, Job)} == kept
    assert result.jobs_retired == 600 - len(kept)


def test_the_day_of_the_cutoff_counts_exactly_the_hours_it_keeps(engine: Engine) -> None:
    """The hours before the cut-off leave the counts and their day's count, which stays, is set
    to the hours it keeps: folded or not, and mended where an earlier purge cut an hour without
    this. A part of that day read as the day less its other hours equals a raw count."""
    day = day_of(CUTOFF)
    cutoff = day + timedelta(hours=10)
    for hour in (1, 2, 5, 9, 13, 20):
        deliver(engine, f"JOB-{hour}", 6, day + timedelta(hours=hour, minutes=15))
    sessions = make_session_factory(engine)
    fold_settled(sessions, NOW, since=day)  # one row a key, as the worker leaves a settled day
    deliver(engine, "JOB-late", 6, day + timedelta(hours=13, minutes=30))  # a writer's row again
    with engine.begin() as connection:  # as a purge cut at 02:00 left it, hour 1 went alone
        first_hour = day + timedelta(hours=1)
        connection.execute(
            delete(JobStatusCount).where(
                JobStatusCount.span_hours == 1, JobStatusCount.bucket_start == first_hour
            )
        )

    purge(sessions, cutoff)

    with sessions() as session:
        for start, end in ((0, 24), (1, 22), (11, 23), (12, 14)):
            window = (day + timedelta(hours=start), day + timedelta(hours=end))
            counted = job_stats(session, *window, (), top=10, now=NOW)
            assert counted == raw_stats(session, *window), window
        whole_day = job_stats(session, day, day + timedelta(days=1), (), top=10, now=NOW)
    assert whole_day.total == 3  # type: ignore[attr-defined]


def test_retiring_batches_grow_while_quick_and_shrink_when_slow() -> None:
    first, most = retention.JOBS_PER_BATCH, retention.JOBS_MOST_PER_BATCH
    target = retention.JOBS_BATCH_SECONDS
    assert retention._next_batch_size(first, 0.01) == 2 * first
    assert retention._next_batch_size(most, 0.01) == most
    assert retention._next_batch_size(4 * first, target) == 4 * first
    assert retention._next_batch_size(4 * first, 3 * target) == 2 * first
    assert retention._next_batch_size(first, 3 * target) == first


def stored_job(
    guid: str,
    updated_at: datetime | None,
    *,
    status: int = 6,
    finished_at: datetime | None = None,
    arrived: datetime | None = None,
) -> Job:
    received_at = arrived or updated_at or NOW
    return Job(
        guid=guid,
        status=status,
        updated_at=updated_at,
        finished_at=finished_at,
        current_event_id=0,
        received_at=received_at,
        first_received_at=received_at,
    )


def dead_run(guid: str, at: datetime) -> HandlerRun:
    return HandlerRun(
        job_guid=guid,
        handler="alert",
        state=RunState.DEAD,
        attempts=1,
        due_at=at,
        idempotency_key=f"msg_{guid}",
        created_at=at,
        updated_at=at,
        filed_at=at,
    )


def test_the_worker_purges_what_ages_past_its_retention(engine: Engine) -> None:
    deliver(engine, "JOB-old", 6, LONG_AGO)
    deliver(engine, "JOB-old-unfinished", 1, LONG_AGO)
    deliver(engine, "JOB-recent", 6, NOW)
    sessions = make_session_factory(engine)

    maintain_once(sessions, NOW)  # without HISTORY_RETENTION: history stays
    assert set(history(engine)) == {"JOB-old", "JOB-old-unfinished", "JOB-recent"}

    maintain_once(sessions, NOW, Retention(NINETY_DAYS, retention.purge_for_worker))

    assert history(engine) == {"JOB-old-unfinished": [1], "JOB-recent": [6]}
    assert {job.guid for job in rows(engine, Job)} == {"JOB-old-unfinished", "JOB-recent"}


def test_workers_purge_one_at_a_time(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's purges are batched DELETEs that another purge may repeat")
    deliver(engine, "JOB-old", 6, LONG_AGO)
    sessions = make_session_factory(engine)
    key = {"key": retention.RETENTION_LOCK}
    with engine.connect() as other_worker:
        assert other_worker.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar()
        assert retention.purge_once(sessions, CUTOFF) is None
        assert set(history(engine)) == {"JOB-old"}
        other_worker.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    purged = retention.purge_once(sessions, CUTOFF)
    assert purged is not None and purged.jobs_retired == 1
    assert history(engine) == {}
