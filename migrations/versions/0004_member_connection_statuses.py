"""Member connection statuses: member_events (history), members (current state), prompt and
institution-alert windows, and handler runs owed to member events.

handler_runs.event_id and job_guid become nullable: a run is owed to a job event (event_id) or to
a member event (member_event_id), exactly one of them (a CHECK constraint says so).

Revision ID: 0004_member_connection_statuses
Revises: 0003_auth_failures
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_member_connection_statuses"
down_revision = "0003_auth_failures"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
CONTEXT_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
ONE_EVENT = "(event_id IS NULL) <> (member_event_id IS NULL)"
GUID = sa.String(255)

MEMBER_INDEXES: tuple[tuple[str, list[str]], ...] = (
    ("ix_members_event_at_guid", ["event_at", "guid"]),
    ("ix_members_connection_status_id_event_at_guid", ["connection_status_id", "event_at", "guid"]),
    ("ix_members_user_guid_event_at_guid", ["user_guid", "event_at", "guid"]),
    ("ix_members_institution_guid_event_at_guid", ["institution_guid", "event_at", "guid"]),
)


def timestamp(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "member_events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("member_guid", GUID, nullable=False),
        sa.Column("user_guid", GUID, nullable=True),
        sa.Column("connection_status_id", sa.Integer(), nullable=True),
        sa.Column("connection_status", GUID, nullable=True),
        sa.Column("connection_status_message", sa.Text(), nullable=True),
        timestamp("event_at", nullable=False),
        sa.Column("event_at_source", sa.String(16), nullable=False),
        timestamp("received_at", nullable=False),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("delivery_id", GUID, nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_member_events_dedup_key"),
        sa.UniqueConstraint("delivery_id", name="uq_member_events_delivery_id"),
    )
    op.create_index(
        "ix_member_events_member_guid_event_at", "member_events", ["member_guid", "event_at"]
    )

    op.create_table(
        "members",
        sa.Column("guid", GUID, primary_key=True),
        sa.Column("user_guid", GUID, nullable=True),
        sa.Column("institution_guid", GUID, nullable=True),
        sa.Column("connection_status_id", sa.Integer(), nullable=True),
        sa.Column("connection_status", GUID, nullable=True),
        sa.Column("connection_status_message", sa.Text(), nullable=True),
        timestamp("event_at", nullable=False),
        sa.Column(
            "current_event_id",
            BIG_ID,
            sa.ForeignKey("member_events.id", name="fk_members_current_event_id"),
            nullable=False,
        ),
        timestamp("received_at", nullable=False),
        timestamp("first_received_at", nullable=False),
    )
    for name, columns in MEMBER_INDEXES:
        op.create_index(name, "members", columns)

    op.create_table(
        "member_prompts",
        sa.Column("member_guid", GUID, primary_key=True),
        sa.Column("handler", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        timestamp("last_prompted_at", nullable=False),
    )

    op.create_table(
        "institution_alerts",
        sa.Column("institution_guid", GUID, primary_key=True),
        timestamp("last_alerted_at", nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
    )
    _extend_handler_runs()


def downgrade() -> None:
    _restore_handler_runs()
    op.drop_table("institution_alerts")
    op.drop_table("member_prompts")
    op.drop_table("members")
    op.drop_table("member_events")


def _extend_handler_runs() -> None:
    """A run is owed to a job event or to a member event, never both."""
    with op.batch_alter_table("handler_runs") as batch:
        batch.alter_column("event_id", existing_type=BIG_ID, nullable=True)
        batch.alter_column("job_guid", existing_type=GUID, nullable=True)
        batch.add_column(sa.Column("member_event_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("member_guid", GUID, nullable=True))
        batch.add_column(sa.Column("context", CONTEXT_DOCUMENT, nullable=True))
        batch.create_foreign_key(
            "fk_handler_runs_member_event_id", "member_events", ["member_event_id"], ["id"]
        )
        batch.create_unique_constraint(
            "uq_handler_runs_member_event_handler", ["member_event_id", "handler"]
        )
        batch.create_check_constraint("ck_handler_runs_one_event", ONE_EVENT)
        batch.create_index("ix_handler_runs_member_guid", ["member_guid"])


def _restore_handler_runs() -> None:
    # Runs owed to member events cannot exist in the older schema.
    op.execute(sa.text("DELETE FROM handler_runs WHERE member_event_id IS NOT NULL"))
    with op.batch_alter_table("handler_runs") as batch:
        batch.drop_index("ix_handler_runs_member_guid")
        batch.drop_constraint("ck_handler_runs_one_event", type_="check")
        batch.drop_constraint("uq_handler_runs_member_event_handler", type_="unique")
        batch.drop_constraint("fk_handler_runs_member_event_id", type_="foreignkey")
        batch.drop_column("context")
        batch.drop_column("member_guid")
        batch.drop_column("member_event_id")
        batch.alter_column("job_guid", existing_type=GUID, nullable=False)
        batch.alter_column("event_id", existing_type=BIG_ID, nullable=False)
