"""The query API's statements are index range scans, and migration 0002 goes down and up."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import Select, inspect, text
from sqlalchemy.engine import Engine

from service.jobs.queries import dated_jobs, job_with_history, status_counts_statement, undated_jobs
from service.jobs.schemas import JobFilters
from service.platform import migrations as migrate
from service.platform.db import make_engine
from service.platform.pages import Position

QUERY_INDEXES = {
    "jobs": {
        "ix_jobs_updated_at_guid",
        "ix_jobs_member_guid_updated_at_guid",
        "ix_jobs_user_guid_updated_at_guid",
        "ix_jobs_institution_guid_updated_at_guid",
        "ix_jobs_status_updated_at_guid",
    },
    "job_events": {"ix_job_events_updated_at_status"},
    "rejected_deliveries": {"ix_rejected_deliveries_received_at_id"},
}
WHEN = datetime(2026, 11, 25, 10, tzinfo=UTC)
AFTER = Position(WHEN, "JOB-5")


def plan(engine: Engine, statement: Select[object]) -> str:
    """The plan, with the alternatives to an ordered index scan priced out: on tiny, never
    analyzed test tables that shows whether an index can serve the statement as on big ones."""
    compiled = statement.compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                connection.execute(text(f"SET {setting} = off"))
            rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", params).scalars()
            return "\n".join(rows)
        positional = tuple(params[name] for name in compiled.positiontup or ())
        sqlite_rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional)
        return "\n".join(str(row[-1]) for row in sqlite_rows)


def parent_indexes(engine: Engine, text_plan: str) -> set[str]:
    """The indexes of a partitioned table whose partitions' indexes the plan uses (PostgreSQL
    names a partition's index after the partition)."""
    if engine.dialect.name != "postgresql":
        return set()
    used = re.findall(r"using (\S+) on", text_plan)
    with engine.connect() as connection:
        return set(
            connection.execute(
                text(
                    "SELECT parent.relname FROM pg_inherits"
                    " JOIN pg_class parent ON parent.oid = pg_inherits.inhparent"
                    " JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
                    " WHERE child.relname = ANY(:used)"
                ),
                {"used": used},
            ).scalars()
        )


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        (
            dated_jobs(JobFilters(member_guid="MBR-1"), None, 51),
            "ix_jobs_member_guid_updated_at_guid",
        ),
        (
            dated_jobs(JobFilters(member_guid="MBR-1"), AFTER, 51),
            "ix_jobs_member_guid_updated_at_guid",
        ),
        (
            undated_jobs(JobFilters(member_guid="MBR-1"), "JOB-5", 51),
            "ix_jobs_member_guid_updated_at_guid",
        ),
        (dated_jobs(JobFilters(user_guid="USR-1"), AFTER, 51), "ix_jobs_user_guid_updated_at_guid"),
        (
            dated_jobs(JobFilters(institution_guid="INS-1"), AFTER, 51),
            "ix_jobs_institution_guid_updated_at_guid",
        ),
        (dated_jobs(JobFilters(status=[9]), AFTER, 51), "ix_jobs_status_updated_at_guid"),
        (dated_jobs(JobFilters(), None, 51), "ix_jobs_updated_at_guid"),
        (dated_jobs(JobFilters(), AFTER, 51), "ix_jobs_updated_at_guid"),
        (
            status_counts_statement(WHEN, datetime.now(UTC), []),
            "ix_job_events_updated_at_status",
        ),
    ],
)
def test_list_statements_use_their_index(
    engine: Engine, statement: Select[object], index: str
) -> None:
    text_plan = plan(engine, statement)
    assert index in text_plan or index in parent_indexes(engine, text_plan), text_plan
    assert "Seq Scan" not in text_plan and "SCAN jobs\n" not in text_plan + "\n", text_plan


def test_a_jobs_history_is_read_through_its_job_guid_index(engine: Engine) -> None:
    """With other jobs' history present (on empty tables the planner finds every path alike
    cheap, and may as well filter a whole primary-key scan)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO job_events (job_guid, status, updated_at, received_at,"
                    " dedup_key, filed_at) SELECT 'JOB-other-' || n, 6, :at, :at, md5(n::text),"
                    " :at FROM generate_series(1, 2000) AS n"
                ),
                {"at": WHEN},
            )
            connection.execute(text("ANALYZE job_events"))
    text_plan = plan(engine, job_with_history("JOB-1"))
    index = "ix_job_events_job_guid_updated_at"
    assert index in text_plan or index in parent_indexes(engine, text_plan), text_plan
    assert "Seq Scan" not in text_plan, text_plan


def test_keyset_position_is_an_index_condition_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL plan detail")
    text_plan = plan(engine, dated_jobs(JobFilters(member_guid="MBR-1"), AFTER, 51))
    # Each month of jobs read backward along its own copy of the index, merged in page order.
    assert "Index Scan Backward using" in text_plan
    assert "ix_jobs_member_guid_updated_at_guid" in parent_indexes(engine, text_plan)
    assert "Index Cond:" in text_plan and "ROW(updated_at" in text_plan
    assert "->  Sort" not in text_plan  # rows come off the indexes already in page order


def index_names(database_url: str) -> dict[str, set[str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            return {
                table: {index["name"] for index in inspector.get_indexes(table) if index["name"]}
                for table in QUERY_INDEXES
            }
    finally:
        engine.dispose()


def test_migration_0002_goes_down_and_up(database_url: str) -> None:
    def present() -> bool:
        names = index_names(database_url)
        return all(QUERY_INDEXES[table] <= names[table] for table in QUERY_INDEXES)

    assert present()
    try:
        migrate.downgrade(database_url, "0001_initial_schema")
        names = index_names(database_url)
        assert not any(QUERY_INDEXES[table] & names[table] for table in QUERY_INDEXES)
        assert "ix_rejected_deliveries_received_at" in names["rejected_deliveries"]
    finally:
        migrate.upgrade(database_url)
    assert present()
    assert (
        "ix_rejected_deliveries_received_at" not in index_names(database_url)["rejected_deliveries"]
    )
