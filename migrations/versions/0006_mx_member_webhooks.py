"""MX's MEMBER and data-updated webhooks, and connection statuses re-read as MX numbers them.

- member_events gains kind (connection_status or member), action and callback_payload
  (X-CALLBACK-PAYLOAD); members gains institution_code and deleted_at.
- member_data_updates holds data-updated webhooks; handler_runs.data_update_id owes runs to them,
  and the CHECK constraint becomes "exactly one of three owners".
- Data: every stored member event and current member state gets its connection status id and
  name re-derived from the raw body, as MX sent them. Earlier code numbered statuses 7 and up
  differently from MX and overwrote the name MX sent with its own.

Revision ID: 0006_mx_member_webhooks
Revises: 0005_handler_queue_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_mx_member_webhooks"
down_revision = "0005_handler_queue_indexes"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
GUID = sa.String(255)
ONE_EVENT = "(event_id IS NULL) <> (member_event_id IS NULL)"
ONE_OWNER = (
    "(CASE WHEN event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN member_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN data_update_id IS NULL THEN 0 ELSE 1 END) = 1"
)
# SQLite's batch mode rebuilds handler_runs; these partial indexes (0005) are rebuilt by hand.
PARTIAL_INDEXES: tuple[tuple[str, list[str], str], ...] = (
    ("ix_handler_runs_pending_due_at_id", ["due_at", "id"], "state = 'pending'"),
    ("ix_handler_runs_running_lease_expires_at", ["lease_expires_at"], "state = 'running'"),
)
# MX's numbering as of this revision (mxenabled/connect-widget, src/const/Statuses.js). A frozen
# copy on purpose: a migration must do the same thing whatever later code says.
MX_CONNECTION_STATUS_NAMES = {
    0: "CREATED",
    1: "PREVENTED",
    2: "DENIED",
    3: "CHALLENGED",
    4: "REJECTED",
    5: "LOCKED",
    6: "CONNECTED",
    7: "IMPEDED",
    8: "RECONNECTED",
    9: "DEGRADED",
    10: "DISCONNECTED",
    11: "DISCONTINUED",
    12: "CLOSED",
    13: "DELAYED",
    14: "FAILED",
    15: "UPDATED",
    16: "DISABLED",
    17: "IMPORTED",
    18: "RESUMED",
    19: "EXPIRED",
    20: "IMPAIRED",
    21: "PENDING",
}
MX_CONNECTION_STATUS_IDS = {name: code for code, name in MX_CONNECTION_STATUS_NAMES.items()}
BATCH = 1000


def timestamp(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch rebuild: SQLite would drop member_events under the foreign
    # keys that point at it.
    op.add_column(
        "member_events",
        sa.Column("kind", sa.String(32), nullable=False, server_default="connection_status"),
    )
    op.add_column("member_events", sa.Column("action", sa.String(64), nullable=True))
    op.add_column("member_events", sa.Column("callback_payload", sa.Text(), nullable=True))
    op.add_column("members", sa.Column("institution_code", GUID, nullable=True))
    op.add_column("members", timestamp("deleted_at"))
    op.create_table(
        "member_data_updates",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("member_guid", GUID, nullable=False),
        sa.Column("user_guid", GUID, nullable=True),
        sa.Column("data_type", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=True),
        timestamp("completed_at"),
        sa.Column("completed_on", sa.String(32), nullable=True),
        timestamp("event_at", nullable=False),
        timestamp("received_at", nullable=False),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("delivery_id", GUID, nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_member_data_updates_dedup_key"),
        sa.UniqueConstraint("delivery_id", name="uq_member_data_updates_delivery_id"),
    )
    op.create_index(
        "ix_member_data_updates_member_guid_event_at_id",
        "member_data_updates",
        ["member_guid", "event_at", "id"],
    )
    with _partial_indexes_rebuilt(), op.batch_alter_table("handler_runs") as batch:
        batch.add_column(sa.Column("data_update_id", BIG_ID, nullable=True))
        batch.create_foreign_key(
            "fk_handler_runs_data_update_id",
            "member_data_updates",
            ["data_update_id"],
            ["id"],
        )
        batch.create_unique_constraint(
            "uq_handler_runs_data_update_handler", ["data_update_id", "handler"]
        )
        batch.drop_constraint("ck_handler_runs_one_event", type_="check")
        batch.create_check_constraint("ck_handler_runs_one_owner", ONE_OWNER)
    rederive_connection_statuses(op.get_bind())


def downgrade() -> None:
    # Runs owed to data updates cannot exist in the older schema; MEMBER events stay as history.
    op.execute(sa.text("DELETE FROM handler_runs WHERE data_update_id IS NOT NULL"))
    with _partial_indexes_rebuilt(), op.batch_alter_table("handler_runs") as batch:
        batch.drop_constraint("ck_handler_runs_one_owner", type_="check")
        batch.create_check_constraint("ck_handler_runs_one_event", ONE_EVENT)
        batch.drop_constraint("uq_handler_runs_data_update_handler", type_="unique")
        batch.drop_constraint("fk_handler_runs_data_update_id", type_="foreignkey")
        batch.drop_column("data_update_id")
    op.drop_index("ix_member_data_updates_member_guid_event_at_id", "member_data_updates")
    op.drop_table("member_data_updates")
    # SQLite (3.35 and later) drops a column in place, as PostgreSQL does.
    for table, column in (
        ("members", "deleted_at"),
        ("members", "institution_code"),
        ("member_events", "callback_payload"),
        ("member_events", "action"),
        ("member_events", "kind"),
    ):
        op.drop_column(table, column)


@contextmanager
def _partial_indexes_rebuilt() -> Iterator[None]:
    """On SQLite, drop the partial indexes before a batch rebuild and create them after it."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name, _, _ in PARTIAL_INDEXES:
            op.drop_index(name, table_name="handler_runs")
    yield
    if sqlite:
        for name, columns, where in PARTIAL_INDEXES:
            op.create_index(name, "handler_runs", columns, sqlite_where=sa.text(where))


def sent_status(payload: Any) -> tuple[int | None, str | None] | None:
    """(id, name) as MX sent them in a stored body, each half filled from MX's table when MX
    left it out; None when the body was purged and cannot say."""
    if not isinstance(payload, dict):
        return None
    body = payload.get("member") if isinstance(payload.get("member"), dict) else payload
    code = body.get("connection_status_id")
    name = body.get("connection_status")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    name = name if isinstance(name, str) else None
    if code is None and name is not None:
        code = MX_CONNECTION_STATUS_IDS.get(name.strip().upper())
    if name is None and code is not None:
        name = MX_CONNECTION_STATUS_NAMES.get(code)
    return code, name


def purged_status(code: int | None, stored_name: str | None) -> tuple[int | None, str | None]:
    """Without the body: MX sends the id with the name, so the id stands and takes MX's name for
    it; an id MX's table lacks kept the name MX sent, and keeps it."""
    known = MX_CONNECTION_STATUS_NAMES.get(code) if code is not None else None
    return code, known or stored_name


def rederive_connection_statuses(connection: sa.Connection) -> None:
    """Member events from their bodies (or, purged, from purged_status), then each member from its
    current event."""
    events = sa.table(
        "member_events",
        sa.column("id", BIG_ID),
        sa.column("connection_status_id", sa.Integer()),
        sa.column("connection_status", GUID),
        sa.column("payload", JSON_DOCUMENT),
    )
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(
                events.c.id,
                events.c.connection_status_id,
                events.c.connection_status,
                events.c.payload,
            )
            .where(events.c.id > last_id)
            .order_by(events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        updates = []
        for row in rows:
            status = sent_status(row.payload) or purged_status(
                row.connection_status_id, row.connection_status
            )
            updates.append({"event": row.id, "code": status[0], "name": status[1]})
        connection.execute(
            events.update()
            .where(events.c.id == sa.bindparam("event"))
            .values(
                connection_status_id=sa.bindparam("code"), connection_status=sa.bindparam("name")
            ),
            updates,
        )
    members = sa.table(
        "members",
        sa.column("current_event_id", BIG_ID),
        sa.column("connection_status_id", sa.Integer()),
        sa.column("connection_status", GUID),
    )
    current = sa.select(events).where(events.c.id == members.c.current_event_id)
    connection.execute(
        members.update().values(
            connection_status_id=current.with_only_columns(
                events.c.connection_status_id
            ).scalar_subquery(),
            connection_status=current.with_only_columns(
                events.c.connection_status
            ).scalar_subquery(),
        )
    )
