"""Status-change counts per hour and per day, each kept three ways, so /stats reads few rows.

job_status_rollups (0008) held one row per (hour, status, institution, shard). A /stats answer
needs the totals per status, the totals per institution (to rank them) and the per-status
breakdown of the top few institutions only; summing every (status, institution) pair of every
hour of a window cost a read per pair. job_status_counts keeps, per bucket of an hour and of a
UTC day, three breakdowns: per status and institution (0), per status (1), per institution (2).
Backfilled from the hourly counts, which it replaces. On PostgreSQL the table is partitioned by
month of bucket_start, like the events it counts (a partition for each month that holds counts,
the current month and three ahead, and DEFAULT), so retention drops a month of counts whole.

Revision ID: 0010_job_status_counts
Revises: 0009_time_partitioned_history
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010_job_status_counts"
down_revision = "0009_time_partitioned_history"
branch_labels = None
depends_on = None

# The UTC day an hour falls in, as each dialect stores a UTC timestamp.
DAY_OF = {
    "postgresql": "date_trunc('day', hour_start, 'UTC')",
    "sqlite": "substr(hour_start, 1, 10) || ' 00:00:00.000000'",
}
COLUMNS = "span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events"
MONTHS_AHEAD = 3
# Months further back than this get no partition of their own (their counts go to DEFAULT).
MONTHS_BACK = 24


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    partitioning = {"postgresql_partition_by": "RANGE (bucket_start)"} if postgresql else {}
    op.create_table(
        "job_status_counts",
        sa.Column("span_hours", sa.SmallInteger(), primary_key=True),
        sa.Column("breakdown", sa.SmallInteger(), primary_key=True),
        sa.Column("bucket_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("status", sa.Integer(), primary_key=True),
        sa.Column("institution_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("status_name", sa.String(255), nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=False),
        **partitioning,
    )
    if postgresql:
        _create_partitions()
    op.create_index(
        "ix_job_status_counts_pairs",
        "job_status_counts",
        ["institution_key", "span_hours", "bucket_start"],
        postgresql_where=sa.text("breakdown = 0"),
        sqlite_where=sa.text("breakdown = 0"),
    )
    day = DAY_OF[op.get_bind().dialect.name]
    for span, bucket in ((1, "hour_start"), (24, day)):
        # The three breakdowns of one span, each from the hourly pairs.
        for breakdown, status, institution, name, kept in (
            (0, "status", "institution_key", "max(status_name)", "status, institution_key"),
            (1, "status", "''", "max(status_name)", "status"),
            (2, "0", "institution_key", "NULL", "institution_key"),
        ):
            op.execute(
                f"INSERT INTO job_status_counts ({COLUMNS}) "  # noqa: S608 - constants only
                f"SELECT {span}, {breakdown}, {bucket}, {status}, {institution}, shard, {name}, "
                f"sum(events) FROM job_status_rollups GROUP BY {bucket}, {kept}, shard"
            )
    op.drop_table("job_status_rollups")


def _create_partitions() -> None:
    """DEFAULT, then a month for each month the hourly counts reach back to (at most
    MONTHS_BACK), this month and MONTHS_AHEAD more."""
    op.execute("CREATE TABLE job_status_counts_default PARTITION OF job_status_counts DEFAULT")
    now = datetime.now(UTC)
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    oldest = op.get_bind().execute(sa.text("SELECT min(hour_start) FROM job_status_rollups"))
    first = oldest.scalar_one_or_none() or this_month
    start = max(
        datetime(first.year, first.month, 1, tzinfo=UTC), _months_later(this_month, -MONTHS_BACK)
    )
    while start <= _months_later(this_month, MONTHS_AHEAD):
        end = _months_later(start, 1)
        op.execute(
            f"CREATE TABLE job_status_counts_p{start:%Y_%m} PARTITION OF job_status_counts "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        start = end


def _months_later(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def downgrade() -> None:
    op.create_table(
        "job_status_rollups",
        sa.Column("hour_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("status", sa.Integer(), primary_key=True),
        sa.Column("institution_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("status_name", sa.String(255), nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO job_status_rollups "
        "(hour_start, status, institution_key, shard, status_name, events) "
        "SELECT bucket_start, status, institution_key, shard, status_name, events "
        "FROM job_status_counts WHERE span_hours = 1 AND breakdown = 0"
    )
    op.drop_table("job_status_counts")
