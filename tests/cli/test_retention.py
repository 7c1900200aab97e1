"""`jobhooks purge --older-than` drops raw payloads and quarantined bodies, keeps history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import basic_header
from db_rows import rows
from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from service.cli import cli
from service.jobs.models import Job, JobEvent, JobStatusCount
from service.members.models import MemberDataUpdate, MemberEvent
from service.outbox.models import HandlerRun, RunState
from service.webhooks.models import RejectedDelivery
from service.webhooks.retention import RETENTION_LOCK, parse_age


def age_everything(engine: Engine, days: int) -> None:
    """Received `days` ago; events of jobs also dated then (member events' time is arrival)."""
    past = datetime.now(UTC) - timedelta(days=days)
    with engine.begin() as connection:
        for table in (JobEvent, MemberDataUpdate, RejectedDelivery):
            connection.execute(update(table).values(received_at=past))
        connection.execute(update(MemberEvent).values(received_at=past, event_at=past))


def run_purge(database_url: str, older_than: str) -> Any:
    return CliRunner().invoke(
        cli, ["purge", "--older-than", older_than], env={"DATABASE_URL": database_url}
    )


def test_purge_retires_finished_jobs_and_drops_their_history(
    post_job: Callable[..., Any],
    client: Any,
    ingest_headers: dict[str, str],
    engine: Engine,
    database_url: str,
) -> None:
    """On SQLite and in PostgreSQL's DEFAULT partition (these MX times have no month of their
    own): batched DELETEs. test_partitioned_retention covers whole partitions."""
    assert post_job(status=2, updated_at="2026-01-01T00:00:00Z").status_code == 204
    assert post_job(status=6, updated_at="2026-01-01T00:05:00Z").status_code == 204
    client.post(
        "/webhooks/mx/jobs",
        data=b"{",
        headers={**ingest_headers, "Content-Type": "application/json"},
    )
    with engine.begin() as connection:  # its runs were delivered: nothing is owed
        connection.execute(update(HandlerRun).values(state=RunState.SUCCEEDED))
    age_everything(engine, days=100)
    assert post_job(guid="JOB-recent").status_code == 204

    result = run_purge(database_url, "90d")

    assert result.exit_code == 0, result.output
    assert "1 jobs retired" in result.output and "1 quarantined bodies" in result.output
    [event] = rows(engine, JobEvent)
    assert (event.job_guid, event.payload is None) == ("JOB-recent", False)
    assert [job.guid for job in rows(engine, Job)] == ["JOB-recent"]
    quarantined = rows(engine, RejectedDelivery)
    assert quarantined[0].body is None and quarantined[0].reason == "malformed_json"


def test_purge_keeps_members_current_events_without_their_bodies(
    client: Any, engine: Engine, database_url: str
) -> None:
    member = {"guid": "MBR-1", "institution_guid": "INS-1", "connection_status_id": 6}
    headers = {**basic_header(), "X-CALLBACK-PAYLOAD": "partner-reference-7"}
    assert client.post("/webhooks/mx/members", json=member, headers=headers).status_code == 204
    update_body = {"action": "member_data_updated", "type": "BALANCE", "member_guid": "MBR-1"}
    response = client.post("/webhooks/mx/data-updates", json=update_body, headers=basic_header())
    assert response.status_code == 204
    with engine.begin() as connection:  # its data_ready run was delivered
        connection.execute(update(HandlerRun).values(state=RunState.SUCCEEDED))
    age_everything(engine, days=100)

    result = run_purge(database_url, "90d")

    assert result.exit_code == 0, result.output
    assert "1 event payloads" in result.output
    [event] = rows(engine, MemberEvent)
    assert (event.payload, event.callback_payload, event.connection_status) == (
        None,
        None,
        "CONNECTED",
    )
    assert rows(engine, MemberDataUpdate) == []


def test_purge_leaves_recent_data_alone(
    post_job: Callable[..., Any], engine: Engine, database_url: str
) -> None:
    assert post_job().status_code == 204

    result = run_purge(database_url, "1d")

    assert result.exit_code == 0, result.output
    assert rows(engine, JobEvent)[0].payload is not None


@pytest.mark.parametrize("text", ["90", "d90", "1w", "", "-3d"])
def test_malformed_age_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="90d"):
        parse_age(text)


def test_ages_in_days_hours_and_minutes() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("30m") == timedelta(minutes=30)


def test_purge_trims_the_status_counts_to_the_window(
    post_job: Callable[..., Any], engine: Engine, database_url: str
) -> None:
    assert post_job(guid="JOB-old", status=6, updated_at="2026-01-01T00:05:00Z").status_code == 204
    yesterday = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(days=1)
    assert post_job(guid="JOB-new", status=6, updated_at=yesterday.isoformat()).status_code == 204

    assert run_purge(database_url, "90d").exit_code == 0

    buckets = {(count.span_hours, count.bucket_start) for count in rows(engine, JobStatusCount)}
    assert buckets == {(1, yesterday.replace(minute=0)), (24, yesterday.replace(hour=0, minute=0))}


@pytest.mark.parametrize("connections", ["0", "17", "two"])
def test_purge_refuses_a_number_of_connections_it_cannot_use(
    database_url: str, connections: str
) -> None:
    refused = CliRunner().invoke(
        cli,
        ["purge", "--older-than", "90d", "--connections", connections],
        env={"DATABASE_URL": database_url},
    )

    assert refused.exit_code == 2
    assert "--connections" in refused.output


def test_purge_waits_its_turn_behind_a_workers_pass(database_url: str, engine: Engine) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the purge lock is PostgreSQL's")
    key = {"key": RETENTION_LOCK}
    with engine.connect() as worker_pass:
        assert worker_pass.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar()
        refused = run_purge(database_url, "90d")
        worker_pass.execute(text("SELECT pg_advisory_unlock(:key)"), key)

    assert refused.exit_code != 0
    assert "another purge is running" in refused.output
    assert run_purge(database_url, "90d").exit_code == 0
