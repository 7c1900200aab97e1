"""Retention keeps what the policy keeps and nothing else: on PostgreSQL by dropping whole month
partitions, on SQLite by batched DELETEs; either way the same rows remain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import job_body
from db_rows import rows
from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_job
from service.jobs.models import Job, JobEvent
from service.jobs.schemas import JobCallback
from service.outbox.models import HandlerRun, RunState
from service.platform.db import make_session_factory, transaction
from service.platform.partitions import maintain, month_start
from service.webhooks.retention import purge

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=200)
CUTOFF = NOW - timedelta(days=90)


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

    result = purge(make_session_factory(engine), CUTOFF)

    assert history(engine) == {
        "JOB-unfinished": [2],  # its current state: the job is not finished
        "JOB-dead-run": [9],  # owed to a dead run an operator may retry
        "JOB-recent": [6],
    }
    assert {job.guid for job in rows(engine, Job)} == {
        "JOB-unfinished",
        "JOB-dead-run",
        "JOB-recent",
    }
    assert [run.job_guid for run in rows(engine, HandlerRun)] == ["JOB-dead-run"]
    assert result.jobs_retired == 1
    if postgresql:
        month = f"{month_start(LONG_AGO):%Y_%m}"
        assert {f"job_events_p{month}", f"handler_runs_p{month}"} <= set(result.partitions_dropped)
        assert result.rows_kept["job_events"] == 2 and result.rows_kept["handler_runs"] == 1
        with engine.connect() as connection:
            kept_in = connection.execute(
                text(
                    "SELECT DISTINCT tableoid::regclass::text FROM job_events WHERE filed_at < :c"
                ),
                {"c": CUTOFF},
            ).scalars()
            assert set(kept_in) == {"job_events_default"}
    else:
        assert result.rows_deleted["job_events"] == 3


def test_purge_with_nothing_old_removes_nothing(engine: Engine) -> None:
    deliver(engine, "JOB-recent", 6, NOW)

    result: Any = purge(make_session_factory(engine), CUTOFF)

    assert result.partitions_dropped == [] and result.jobs_retired == 0
    assert history(engine) == {"JOB-recent": [6]}
