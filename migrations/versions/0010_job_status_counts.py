"""Status-change counts per hour and per day, each kept three ways, so /stats reads few rows.

job_status_rollups (0008) held one row per (hour, status, institution, shard). A /stats answer
needs the totals per status, the totals per institution (to rank them) and the per-status
breakdown of the top few institutions only; summing every (status, institution) pair of every
hour of a window cost a read per pair. job_status_counts keeps, per bucket of an hour and of a
UTC day, three breakdowns: per status and institution (0), per status (1), per institution (2).
Backfilled from the hourly counts, which it replaces.

Revision ID: 0010_job_status_counts
Revises: 0009_time_partitioned_history
Create Date: 2026-12-02
"""

from __future__ import annotations

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


def upgrade() -> None:
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
    )
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
