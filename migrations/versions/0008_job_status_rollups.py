"""Status-change counts per hour, status and institution, for /stats at any size of history.

Backfilled from the events already stored (one GROUP BY over job_events; on PostgreSQL about a
second per million events on the development machine), under shard 0.

Revision ID: 0008_job_status_rollups
Revises: 0007_handler_delivery_control
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_job_status_rollups"
down_revision = "0007_handler_delivery_control"
branch_labels = None
depends_on = None

# The hour an event's updated_at falls in, as each dialect stores a UTC timestamp.
HOUR_OF = {
    "postgresql": "date_trunc('hour', e.updated_at, 'UTC')",
    "sqlite": "substr(e.updated_at, 1, 13) || ':00:00.000000'",
}


def upgrade() -> None:
    op.create_table(
        "job_status_rollups",
        sa.Column("hour_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("status", sa.Integer(), primary_key=True),
        sa.Column("institution_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("status_name", sa.String(255), nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=False),
    )
    hour = HOUR_OF[op.get_bind().dialect.name]
    institution = "coalesce(j.institution_guid, '')"
    op.execute(
        "INSERT INTO job_status_rollups "  # noqa: S608 - constants only
        "(hour_start, status, institution_key, shard, status_name, events) "
        f"SELECT {hour}, e.status, {institution}, 0, max(e.status_name), "
        "count(*) FROM job_events e LEFT JOIN jobs j ON j.guid = e.job_guid "
        f"WHERE e.updated_at IS NOT NULL GROUP BY {hour}, e.status, {institution}"
    )


def downgrade() -> None:
    op.drop_table("job_status_rollups")
