"""Handler delivery that copes with failing receivers: per-handler state and lane claims.

- handler_states: one row per handler (paused, circuit, consecutive failures, rate slot), shared
  by every worker through the database.
- handler_runs may have no owner: the operator alert the outbox raises when a circuit opens.
- A partial index on due pending runs by handler, for claims that take one handler's runs.
- Run states superseded and expired need no schema change (state is text).

Revision ID: 0007_handler_delivery_control
Revises: 0006_mx_member_webhooks
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.platform.migrations import outside_transaction

revision = "0007_handler_delivery_control"
down_revision = "0006_mx_member_webhooks"
branch_labels = None
depends_on = None

ONE_OWNER = (
    "(CASE WHEN event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN member_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN data_update_id IS NULL THEN 0 ELSE 1 END) = 1"
)
AT_MOST_ONE_OWNER = ONE_OWNER.replace("= 1", "<= 1")
PENDING = "state = 'pending'"
# SQLite's batch mode rebuilds handler_runs; its partial indexes are rebuilt by hand.
PARTIAL_INDEXES: tuple[tuple[str, list[str], str], ...] = (
    ("ix_handler_runs_pending_due_at_id", ["due_at", "id"], PENDING),
    ("ix_handler_runs_running_lease_expires_at", ["lease_expires_at"], "state = 'running'"),
)
LANE_INDEX = ("ix_handler_runs_pending_handler_due_at_id", ["handler", "due_at", "id"], PENDING)


def timestamp(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "handler_states",
        sa.Column("handler", sa.String(100), primary_key=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        timestamp("paused_at"),
        sa.Column("circuit", sa.String(16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("openings", sa.Integer(), nullable=False),
        timestamp("open_until"),
        timestamp("probe_started_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        timestamp("last_failure_at"),
        timestamp("next_slot_at"),
        timestamp("updated_at", nullable=False),
    )
    _replace_owner_check("ck_handler_runs_one_owner", "ck_handler_runs_at_most_one_owner")
    with outside_transaction():
        name, columns, where = LANE_INDEX
        op.create_index(
            name,
            "handler_runs",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with outside_transaction():
        op.drop_index(LANE_INDEX[0], table_name="handler_runs", postgresql_concurrently=True)
    # Runs of no owner, and the moot-run states, do not exist in the older schema.
    op.execute(
        sa.text(
            "DELETE FROM handler_runs WHERE event_id IS NULL AND member_event_id IS NULL "
            "AND data_update_id IS NULL"
        )
    )
    op.execute(
        sa.text(
            "UPDATE handler_runs SET state = 'succeeded' WHERE state IN ('superseded', 'expired')"
        )
    )
    _replace_owner_check("ck_handler_runs_at_most_one_owner", "ck_handler_runs_one_owner")
    op.drop_table("handler_states")


def _replace_owner_check(old: str, new: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name, _, _ in PARTIAL_INDEXES:
            op.drop_index(name, table_name="handler_runs")
    with op.batch_alter_table("handler_runs") as batch:
        batch.drop_constraint(old, type_="check")
        batch.create_check_constraint(
            new, AT_MOST_ONE_OWNER if new.endswith("at_most_one_owner") else ONE_OWNER
        )
    if sqlite:
        for name, columns, where in PARTIAL_INDEXES:
            op.create_index(name, "handler_runs", columns, sqlite_where=sa.text(where))
