"""Every migration goes up, all the way down and up again on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import main as alembic_main
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_job
from service.jobs.models import Job, JobStatusCount
from service.jobs.schemas import JobCallback
from service.platform import migrations as migrate
from service.platform.checks import run_checks
from service.platform.db import make_engine
from service.platform.models import Base
from service.platform.partitions import include_name
from service.platform.schema_version import SCHEMA_HEAD

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_TABLES = set(Base.metadata.tables)


def alembic(*arguments: str) -> None:
    """The `alembic` command line itself, reading DATABASE_URL like an operator's shell would."""
    alembic_main(argv=["-c", str(REPO_ROOT / "alembic.ini"), *arguments])


def table_names(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def schema_drift(database_url: str) -> list[object]:
    """What autogenerate would still write: the models and the migrated schema must agree."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": include_name}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(REPO_ROOT)

    alembic("upgrade", "head")
    assert table_names(database_url) >= MODEL_TABLES

    alembic("downgrade", "base")
    assert table_names(database_url) & MODEL_TABLES == set()

    alembic("upgrade", "head")
    assert table_names(database_url) >= MODEL_TABLES


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert schema_drift(database_url) == []


def test_schema_head_constant_is_alembics_head() -> None:
    """/readyz reads SCHEMA_HEAD instead of importing Alembic; a new migration must update it."""
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))

    assert script.get_heads() == [SCHEMA_HEAD], (
        "update SCHEMA_HEAD in service/platform/schema_version.py"
    )


def test_readiness_reports_an_unmigrated_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        [database, migrations] = run_checks(engine)
    finally:
        engine.dispose()

    assert database.ok
    assert not migrations.ok and "no revision" in migrations.detail


def test_status_counts_are_backfilled_from_the_hourly_ones(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install upgraded to 0010 answers /stats with what it had already counted: every hour
    and every day, per status and institution, per status, and per institution."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(REPO_ROOT)
    alembic("downgrade", "0009_time_partitioned_history")
    engine = make_engine(database_url)
    nov30, dec1 = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    hourly = [
        (nov30.replace(hour=22), 6, "INS-a", 0, 3),
        (nov30.replace(hour=23), 6, "INS-a", 1, 4),
        (nov30.replace(hour=23), 9, "INS-a", 1, 2),
        (dec1, 6, "INS-a", 0, 5),
        (dec1, 9, "", 0, 1),
    ]
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM job_status_rollups"))
            for hour, status, institution, shard, events in hourly:
                connection.execute(
                    text(
                        "INSERT INTO job_status_rollups (hour_start, status, institution_key, "
                        "shard, status_name, events) VALUES (:hour, :status, :institution, "
                        ":shard, 'X', :events)"
                    ),
                    {
                        "hour": hour,
                        "status": status,
                        "institution": institution,
                        "shard": shard,
                        "events": events,
                    },
                )
        alembic("upgrade", "head")
        with Session(engine) as session:
            counts = {
                (
                    row.span_hours,
                    row.breakdown,
                    row.bucket_start,
                    row.status,
                    row.institution_key,
                    row.shard,
                ): row.events
                for row in session.scalars(select(JobStatusCount))
            }
    finally:
        engine.dispose()
    days = {key: events for key, events in counts.items() if key[0] == 24}
    hours = {key: events for key, events in counts.items() if key[0] == 1}
    assert {key[1:]: events for key, events in hours.items() if key[1] == 0} == {
        (0, hour, status, institution, shard): events
        for hour, status, institution, shard, events in hourly
    }
    assert days == {
        (24, 0, nov30, 6, "INS-a", 0): 3,
        (24, 0, nov30, 6, "INS-a", 1): 4,
        (24, 0, nov30, 9, "INS-a", 1): 2,
        (24, 0, dec1, 6, "INS-a", 0): 5,
        (24, 0, dec1, 9, "", 0): 1,
        (24, 1, nov30, 6, "", 0): 3,
        (24, 1, nov30, 6, "", 1): 4,
        (24, 1, nov30, 9, "", 1): 2,
        (24, 1, dec1, 6, "", 0): 5,
        (24, 1, dec1, 9, "", 0): 1,
        (24, 2, nov30, 0, "INS-a", 0): 3,
        (24, 2, nov30, 0, "INS-a", 1): 6,
        (24, 2, dec1, 0, "INS-a", 0): 5,
        (24, 2, dec1, 0, "", 0): 1,
    }
    assert hours[1, 2, nov30.replace(hour=23), 0, "INS-a", 1] == 6


def test_stored_jobs_are_filed_under_their_current_state(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install upgraded to 0013 keeps every job, each filed under its current state's MX time
    (in that month's partition on PostgreSQL), and goes on updating them in place."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(REPO_ROOT)
    alembic("downgrade", "0012_event_institution")
    engine = make_engine(database_url)
    november = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    stored = {"JOB-november": november, "JOB-undated": None}
    try:
        with engine.begin() as connection:
            for guid, updated_at in stored.items():
                connection.execute(
                    text(
                        "INSERT INTO jobs (guid, status, updated_at, current_event_id,"
                        " received_at, first_received_at) VALUES (:guid, 1, :updated_at, 0,"
                        " :now, :now)"
                    ),
                    {"guid": guid, "updated_at": updated_at, "now": november},
                )
        alembic("upgrade", "head")
        with Session(engine) as session:
            later = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
            raw = {"guid": "JOB-november", "status": 6, "updated_at": later.isoformat()}
            ingest_job(
                session, JobDelivery(JobCallback.model_validate(raw), raw, later), lambda _: ()
            )
            session.commit()
            jobs = {job.guid: (job.filed_at, job.status) for job in session.scalars(select(Job))}
            holders = (
                dict(session.execute(text("SELECT guid, tableoid::regclass::text FROM jobs")).all())
                if engine.dialect.name == "postgresql"
                else {}
            )
    finally:
        engine.dispose()
    assert jobs == {
        "JOB-november": (november, 6),
        "JOB-undated": (datetime(1970, 1, 1, tzinfo=UTC), 1),
    }
    if holders:
        assert holders == {"JOB-november": "jobs_p2026_11", "JOB-undated": "jobs_default"}
