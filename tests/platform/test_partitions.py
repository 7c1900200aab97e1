"""Partitions of the history tables: created ahead by the worker, and duplicates still caught when
a retry arrives a day later, after a partition boundary. SQLite keeps plain tables."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import job_body
from db_rows import count, rows
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_job
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
