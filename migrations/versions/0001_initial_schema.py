"""Initial schema: job_events (history), jobs (current state), handler_runs, rejected_deliveries.

Revision ID: 0001_initial_schema
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial_schema"
down_revision = None
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
GUID = sa.String(255)


def timestamp(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("job_guid", GUID, nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("status_name", GUID, nullable=True),
        timestamp("updated_at"),
        timestamp("received_at", nullable=False),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("delivery_id", GUID, nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_job_events_dedup_key"),
        sa.UniqueConstraint("delivery_id", name="uq_job_events_delivery_id"),
    )
    op.create_index("ix_job_events_job_guid_updated_at", "job_events", ["job_guid", "updated_at"])

    op.create_table(
        "jobs",
        sa.Column("guid", GUID, primary_key=True),
        sa.Column("member_guid", GUID, nullable=True),
        sa.Column("user_guid", GUID, nullable=True),
        sa.Column("institution_guid", GUID, nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("status_name", GUID, nullable=True),
        sa.Column("is_authenticated", sa.Boolean(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        timestamp("created_at"),
        timestamp("started_at"),
        timestamp("updated_at"),
        timestamp("finished_at"),
        sa.Column(
            "current_event_id",
            BIG_ID,
            sa.ForeignKey("job_events.id", name="fk_jobs_current_event_id"),
            nullable=False,
        ),
        timestamp("received_at", nullable=False),
        timestamp("first_received_at", nullable=False),
    )

    op.create_table(
        "handler_runs",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            BIG_ID,
            sa.ForeignKey("job_events.id", name="fk_handler_runs_event_id"),
            nullable=False,
        ),
        sa.Column("job_guid", GUID, nullable=False),
        sa.Column("handler", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        timestamp("due_at", nullable=False),
        timestamp("lease_expires_at"),
        sa.Column("locked_by", GUID, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", GUID, nullable=False),
        timestamp("created_at", nullable=False),
        timestamp("updated_at", nullable=False),
        timestamp("started_at"),
        timestamp("finished_at"),
        sa.UniqueConstraint("event_id", "handler", name="uq_handler_runs_event_handler"),
        sa.UniqueConstraint("idempotency_key", name="uq_handler_runs_idempotency_key"),
    )
    op.create_index("ix_handler_runs_state_due_at", "handler_runs", ["state", "due_at"])
    op.create_index("ix_handler_runs_job_guid", "handler_runs", ["job_guid"])

    op.create_table(
        "rejected_deliveries",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(100), nullable=False),
        timestamp("received_at", nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("details", JSON_DOCUMENT, nullable=True),
        sa.Column("content_type", GUID, nullable=True),
        sa.Column("delivery_id", GUID, nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
        timestamp("replayed_at"),
    )
    op.create_index("ix_rejected_deliveries_received_at", "rejected_deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_table("rejected_deliveries")
    op.drop_table("handler_runs")
    op.drop_table("jobs")
    op.drop_table("job_events")
