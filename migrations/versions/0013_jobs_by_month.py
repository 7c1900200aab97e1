"""Current states of jobs partitioned by month on PostgreSQL, so retention drops a month of jobs
whole as it drops a month of history, whatever the month holds.

- jobs gains filed_at, the MX time of the job's first stored status change, and is partitioned
  by it: its primary key becomes (guid, filed_at), as PostgreSQL requires of a partitioned table.
  Rows already stored take their current state's MX time (1970-01-01 for none).
- Since guid alone is no longer unique on PostgreSQL, ingest finds a stored job's filed_at
  through jobhooks_locate_jobs: it takes a transaction-scoped advisory lock on each guid of a
  batch (in one order, so batches never wait on each other in a cycle) and only then reads
  the rows, in a snapshot of its own. Two first callbacks of one job, either side of a month's
  start, then meet: the second waits for the first to commit and finds its row.
- ix_jobs_unfinished lists the jobs not finished yet, which retention keeps out of a month it
  drops without reading the month.

PostgreSQL: the table is rebuilt (a DEFAULT partition and one per month that holds rows, plus
the current one and three ahead) and its rows copied, in the time README's "Scaling out" gives
per million jobs; the table is locked meanwhile. SQLite keeps a plain table keyed by guid, with
the new column and index.

Revision ID: 0013_jobs_by_month
Revises: 0012_event_institution
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from service.platform.partitions import month_start, next_month

revision = "0013_jobs_by_month"
down_revision = "0012_event_institution"
branch_labels = None
depends_on = None

UNDATED = "1970-01-01 00:00:00+00"
SQLITE_UNDATED = "1970-01-01 00:00:00.000000"
MONTHS_AHEAD = 3
UNFINISHED = "finished_at IS NULL AND status NOT IN (6, 7, 8, 9)"
INDEXES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("ix_jobs_updated_at_guid", ("updated_at", "guid"), None),
    ("ix_jobs_member_guid_updated_at_guid", ("member_guid", "updated_at", "guid"), None),
    ("ix_jobs_user_guid_updated_at_guid", ("user_guid", "updated_at", "guid"), None),
    ("ix_jobs_institution_guid_updated_at_guid", ("institution_guid", "updated_at", "guid"), None),
    ("ix_jobs_status_updated_at_guid", ("status", "updated_at", "guid"), None),
)
UNFINISHED_INDEX = ("ix_jobs_unfinished", ("filed_at",), UNFINISHED)
# The two-key advisory lock space is apart from the one-key space of the service's other locks;
# the first key says "a job's row", the second is the guid's hashtext.
LOCATE_JOBS = """
CREATE OR REPLACE FUNCTION jobhooks_locate_jobs(guids text[])
RETURNS TABLE (job_guid text, job_filed_at timestamptz)
LANGUAGE plpgsql VOLATILE
-- One plan per connection, through the primary keys: planned for each call's own array (the
-- default), the lookup cost every batch a planning, and a plan made while a month was still
-- empty would read the month whole for as long as the connection lives.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
BEGIN
    -- The subquery sorts the keys before the outer query locks them one by one, in that order.
    PERFORM count(pg_advisory_xact_lock(6975330, key))
    FROM (SELECT DISTINCT hashtext(guid) AS key FROM unnest(guids) AS guid ORDER BY 1) AS keys;
    -- A statement of a VOLATILE function reads in a snapshot of its own, taken now: it sees
    -- every row committed by whoever held one of these locks before.
    RETURN QUERY SELECT jobs.guid::text, jobs.filed_at FROM jobs WHERE jobs.guid = ANY(guids);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition()
        op.execute(LOCATE_JOBS)
        return
    op.add_column("jobs", sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE jobs SET filed_at = coalesce(updated_at, '{SQLITE_UNDATED}')")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("filed_at", nullable=False)
    name, columns, where = UNFINISHED_INDEX
    op.create_index(name, "jobs", list(columns), sqlite_where=sa.text(where))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS jobhooks_locate_jobs(text[])")
        _unpartition()
        return
    op.drop_index(UNFINISHED_INDEX[0], table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("filed_at")


def _partition() -> None:
    old = _set_aside("jobs_unpartitioned")
    op.execute(
        f"CREATE TABLE jobs (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
        " filed_at timestamptz NOT NULL) PARTITION BY RANGE (filed_at)"
    )
    op.execute("CREATE TABLE jobs_default PARTITION OF jobs DEFAULT")
    filed = f"coalesce(updated_at, '{UNDATED}')"
    for start in _months(old, filed):
        end = next_month(start)
        op.execute(
            f"CREATE TABLE jobs_p{start:%Y_%m} PARTITION OF jobs"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    columns = ", ".join(_columns(old))
    op.execute(
        f"INSERT INTO jobs ({columns}, filed_at) SELECT {columns}, {filed} FROM {old}"  # noqa: S608
    )
    # Keys and indexes after the copy: building them once is faster than keeping them up per row.
    op.execute("ALTER TABLE jobs ADD PRIMARY KEY (guid, filed_at)")
    _create_indexes((*INDEXES, UNFINISHED_INDEX))
    op.execute(f"DROP TABLE {old}")
    # Not an empty table: its statistics would tell the planner its months hold nothing, and
    # plans cached on that (a seq scan of a partition) would outlive the first rows. A partition
    # never analyzed is planned as holding some rows, so lookups by guid use the primary key.
    if op.get_bind().execute(sa.text("SELECT EXISTS (SELECT FROM jobs)")).scalar_one():
        op.execute("ANALYZE jobs")


def _unpartition() -> None:
    old = _set_aside("jobs_partitioned")
    op.execute(f"CREATE TABLE jobs (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute("ALTER TABLE jobs DROP COLUMN filed_at")
    columns = ", ".join(_columns("jobs"))
    op.execute(f"INSERT INTO jobs ({columns}) SELECT {columns} FROM {old}")  # noqa: S608
    op.execute("ALTER TABLE jobs ADD PRIMARY KEY (guid)")
    _create_indexes(INDEXES)
    op.execute(f"DROP TABLE {old} CASCADE")


def _set_aside(old: str) -> str:
    """Rename jobs out of the way, without its keys and indexes, whose names the new one takes."""
    bind = op.get_bind()
    for name in bind.execute(
        sa.text(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = to_regclass('jobs') AND NOT indisprimary"
        )
    ).scalars():
        op.execute(f"DROP INDEX {name}")
    op.execute(f"ALTER TABLE jobs RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT jobs_pkey TO {old}_pkey")
    return old


def _create_indexes(indexes: tuple[tuple[str, tuple[str, ...], str | None], ...]) -> None:
    for name, columns, where in indexes:
        op.create_index(
            name, "jobs", list(columns), postgresql_where=sa.text(where) if where else None
        )


def _columns(table: str) -> list[str]:
    return [column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)]


def _months(table: str, key: str) -> list[datetime]:
    """Months of the last two years that hold rows, and the current one and three ahead."""
    current = month_start(datetime.now(UTC))
    held = op.get_bind().execute(
        sa.text(
            f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') FROM {table}"  # noqa: S608
            f" WHERE {key} >= :earliest"
        ),
        {"earliest": current.replace(year=current.year - 2)},
    )
    months = {month.replace(tzinfo=UTC) for month in held.scalars()}
    month = current
    for _ in range(MONTHS_AHEAD + 1):
        months.add(month)
        month = next_month(month)
    return sorted(months)
