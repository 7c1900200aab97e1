"""Partitions of the history tables and of jobs: created ahead by the worker, duplicates still
caught when a retry arrives a day later, after a partition boundary, and one row per job when its
callbacks fall either side of one. SQLite keeps plain tables."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import job_body
from db_rows import count, rows, wait_until_a_query_waits_for_a_lock
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_job, ingest_jobs_autocommitted
from service.jobs.models import JobEvent
from service.jobs.schemas import JobCallback
from service.members.ingest import (
    MemberDelivery,
    MemberEventKind,
    MemberReport,
    ingest_member_event,
)
from service.members.models import MemberEvent
from service.outbox.runner import maintain_periodically
from service.platform.db import make_session_factory, transaction
from service.platform.outcomes import Outcome
from service.platform.partitions import MAINTENANCE_LOCK, PARTITIONED, maintain

BOUNDARY = datetime(2027, 1, 1, tzinfo=UTC)


def partition_names(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as connection:
        return set(
            connection.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars()
        )


def where_stored(engine: Engine, table: str, row_id: int) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :id"),  # noqa: S608
                {"id": row_id},
            ).scalar_one()
        )


def run_maintenance_once(engine: Engine, now: datetime) -> None:
    """The worker's maintenance step, one round (its stop event already set)."""
    stop = threading.Event()
    stop.set()
    maintain_periodically(make_session_factory(engine), stop, clock=lambda: now)


def no_handlers(*_: Any) -> tuple[str, ...]:
    return ()


def test_the_worker_creates_partitions_ahead(engine: Engine) -> None:
    run_maintenance_once(engine, datetime(2031, 11, 15, tzinfo=UTC))

    if engine.dialect.name == "sqlite":
        assert partition_names(engine) == set()
        return
    for table in PARTITIONED:
        assert {
            f"{table.name}_p2031_11",
            f"{table.name}_p2031_12",
            f"{table.name}_p2032_01",
            f"{table.name}_p2032_02",
        } <= partition_names(engine)


def test_maintenance_runs_once_however_many_workers_try(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        return
    sessions = make_session_factory(engine)
    with transaction(sessions) as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MAINTENANCE_LOCK})
        with transaction(sessions) as session:
            result = maintain(session, datetime(2033, 3, 1, tzinfo=UTC))
    assert result.skipped and result.created == []
    assert "job_events_p2033_03" not in partition_names(engine)


def test_rows_waiting_in_default_move_into_their_new_partition(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    future = datetime(2034, 6, 10, tzinfo=UTC)
    with transaction(sessions) as session:
        result = job_delivery(session, future, future - timedelta(days=900))

    run_maintenance_once(engine, future)

    assert count(engine, JobEvent) == 1
    if engine.dialect.name == "postgresql":
        assert where_stored(engine, "job_events", result) == "job_events_p2034_06"


def job_delivery(session: Session, updated_at: datetime, received_at: datetime) -> int:
    raw = job_body(guid="JOB-boundary", status=2, updated_at=updated_at.isoformat())
    delivery = JobDelivery(JobCallback.model_validate(raw), raw, received_at)
    outcome = ingest_job(session, delivery, no_handlers)
    assert outcome.event_id is not None or outcome.outcome is Outcome.DUPLICATE
    return outcome.event_id or 0


def test_a_job_retry_a_day_later_in_the_next_partition_is_a_duplicate(engine: Engine) -> None:
    run_maintenance_once(engine, BOUNDARY - timedelta(days=1))
    sessions = make_session_factory(engine)
    last_moment = BOUNDARY - timedelta(microseconds=1)
    raw = job_body(guid="JOB-boundary", status=2, updated_at=last_moment.isoformat())
    callback = JobCallback.model_validate(raw)

    with transaction(sessions) as session:
        first = ingest_job(session, JobDelivery(callback, raw, last_moment), no_handlers)
    with transaction(sessions) as session:
        retry = ingest_job(
            session, JobDelivery(callback, raw, BOUNDARY + timedelta(hours=24)), no_handlers
        )
    with transaction(sessions) as session:
        newer = job_delivery(session, BOUNDARY, BOUNDARY + timedelta(hours=24))

    assert (first.outcome, retry.outcome) == (Outcome.ACCEPTED, Outcome.DUPLICATE)
    assert count(engine, JobEvent, job_guid="JOB-boundary") == 2
    if engine.dialect.name == "postgresql":
        assert first.event_id is not None
        assert where_stored(engine, "job_events", first.event_id) == "job_events_p2026_12"
        assert where_stored(engine, "job_events", newer) == "job_events_p2027_01"


def test_a_member_retry_a_day_later_in_the_next_partition_is_a_duplicate(
    engine: Engine,
) -> None:
    """A CONNECTION_STATUS body has no time: each copy is dated on arrival, so the retry files
    in the next month, and only its webhook-id names it."""
    run_maintenance_once(engine, BOUNDARY - timedelta(days=1))
    sessions = make_session_factory(engine)
    report = MemberReport(
        MemberEventKind.CONNECTION_STATUS,
        "MBR-boundary",
        connection_status_id=3,
        connection_status="CHALLENGED",
    )
    raw = {"member_guid": "MBR-boundary", "connection_status": "CHALLENGED"}
    arrivals = (BOUNDARY - timedelta(seconds=1), BOUNDARY + timedelta(hours=24))
    between = MemberReport(
        MemberEventKind.CONNECTION_STATUS,
        "MBR-boundary",
        connection_status_id=6,
        connection_status="CONNECTED",
    )
    outcomes = []
    with transaction(sessions) as session:
        outcomes.append(
            ingest_member_event(
                session, MemberDelivery(report, raw, arrivals[0], "msg_boundary"), no_handlers
            ).outcome
        )
    with transaction(sessions) as session:
        # A newer state in between, so the retry is no repeat of the current state.
        ingest_member_event(
            session, MemberDelivery(between, raw, BOUNDARY + timedelta(hours=1)), no_handlers
        )
    with transaction(sessions) as session:
        outcomes.append(
            ingest_member_event(
                session, MemberDelivery(report, raw, arrivals[1], "msg_boundary"), no_handlers
            ).outcome
        )

    assert outcomes == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert [event.connection_status for event in rows(engine, MemberEvent)] == [
        "CHALLENGED",
        "CONNECTED",
    ]


def where_job_is(engine: Engine, guid: str) -> list[tuple[str, datetime, int]]:
    """Each row of the job: the table that holds it, its filed_at and its status."""
    holder = "tableoid::regclass::text" if engine.dialect.name == "postgresql" else "'jobs'"
    with engine.connect() as connection:
        found = connection.execute(
            text(f"SELECT {holder}, filed_at, status FROM jobs WHERE guid = :guid"),  # noqa: S608
            {"guid": guid},
        )
        return [(table, _as_utc(filed), status) for table, filed, status in found]


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def callback(guid: str, status: int, updated_at: datetime) -> JobDelivery:
    raw = job_body(guid=guid, status=status, updated_at=updated_at.isoformat(), finished_at=None)
    return JobDelivery(JobCallback.model_validate(raw), raw, updated_at)


def test_a_job_stays_in_the_month_of_its_first_status_change(engine: Engine) -> None:
    """Its next status change, a month later by the calendar, updates the same row."""
    run_maintenance_once(engine, BOUNDARY - timedelta(days=1))
    sessions = make_session_factory(engine)
    first_at = BOUNDARY - timedelta(minutes=1)
    with transaction(sessions) as session:
        ingest_job(session, callback("JOB-crossing", 1, first_at), no_handlers)
    with transaction(sessions) as session:
        later = ingest_job(
            session, callback("JOB-crossing", 6, BOUNDARY + timedelta(minutes=1)), no_handlers
        )

    assert later.outcome is Outcome.ACCEPTED
    table = "jobs_p2026_12" if engine.dialect.name == "postgresql" else "jobs"
    assert where_job_is(engine, "JOB-crossing") == [(table, first_at, 6)]


@pytest.mark.parametrize("second_path", ["steps", "one-statement"])
def test_two_first_callbacks_either_side_of_a_month_start_make_one_job(
    engine: Engine, second_path: str
) -> None:
    """The second callback of a new job arrives while the first is still being written, and
    MX dated it in the next month: it waits for the first to commit and updates its row."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time and keeps guid unique by itself")
    run_maintenance_once(engine, BOUNDARY - timedelta(days=1))
    sessions = make_session_factory(engine)
    first_at = BOUNDARY - timedelta(seconds=1)
    second = callback("JOB-racing", 1, BOUNDARY + timedelta(seconds=1))

    def ingest_second() -> Outcome:
        if second_path == "one-statement":
            alone = ingest_jobs_autocommitted(engine, [second], no_handlers)
            assert alone is not None
            return alone[0].outcome
        with transaction(sessions) as session:
            return ingest_job(session, second, no_handlers).outcome

    with ThreadPoolExecutor(max_workers=1) as other_worker:
        with transaction(sessions) as session:
            ingest_job(session, callback("JOB-racing", 0, first_at), no_handlers)
            waiting = other_worker.submit(ingest_second)
            wait_until_a_query_waits_for_a_lock(engine, timeout=10)
        assert waiting.result(timeout=30) is Outcome.ACCEPTED

    assert where_job_is(engine, "JOB-racing") == [("jobs_p2026_12", first_at, 1)]
    assert count(engine, JobEvent, job_guid="JOB-racing") == 2
