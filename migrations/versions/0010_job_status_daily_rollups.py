"""Status-change counts per UTC day beside the hourly ones, so /stats over weeks reads days.

Backfilled from the hourly counts (one GROUP BY over job_status_rollups, shard by shard, so
what each process wrote stays its own row).

Revision ID: 0010_job_status_daily_rollups
Revises: 0009_time_partitioned_history
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_job_status_daily_rollups"
down_revision = "0009_time_partitioned_history"
branch_labels = None
depends_on = None

# The UTC day an hour falls in, as each dialect stores a UTC timestamp.
DAY_OF = {
    "postgresql": "date_trunc('day', hour_start, 'UTC')",
    "sqlite": "substr(hour_start, 1, 10) || ' 00:00:00.000000'",
}


def upgrade() -> None:
    op.create_table(
        "job_status_daily_rollups",
        sa.Column("day_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("status", sa.Integer(), primary_key=True),
        sa.Column("institution_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("status_name", sa.String(255), nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=False),
    )
    day = DAY_OF[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO job_status_daily_rollups "  # noqa: S608 - constants only
        "(day_start, status, institution_key, shard, status_name, events) "
        f"SELECT {day}, status, institution_key, shard, max(status_name), sum(events) "
        f"FROM job_status_rollups GROUP BY {day}, status, institution_key, shard"
    )


def downgrade() -> None:
    op.drop_table("job_status_daily_rollups")
