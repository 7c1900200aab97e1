"""Unique keys of the history tables lead with their time, so new rows land at an index's end.

A dedup key (a SHA-256 in hex) or an idempotency key (a random id) as the first column spreads
every insert over the whole of a large index: on PostgreSQL each one then dirties a page of its
own, read back from disk once the index outgrows memory, and written in full to the WAL after
each checkpoint. Led by the partition key (MX's updated_at, or when the event happened), which
arrives in about the order of time, inserts fill the index's last pages instead. Uniqueness is
the same set of columns; ON CONFLICT does not depend on the order.

PostgreSQL rebuilds each key on every partition (the tables are locked meanwhile); SQLite
rebuilds the three tables.

Revision ID: 0011_time_ordered_unique_keys
Revises: 0010_job_status_counts
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0011_time_ordered_unique_keys"
down_revision = "0010_job_status_counts"
branch_labels = None
depends_on = None

# table, constraint, columns before, columns after
KEYS = (
    ("job_events", "uq_job_events_dedup_key", ["dedup_key", "filed_at"], ["filed_at", "dedup_key"]),
    (
        "member_events",
        "uq_member_events_dedup_key",
        ["dedup_key", "event_at"],
        ["event_at", "dedup_key"],
    ),
    (
        "handler_runs",
        "uq_handler_runs_idempotency_key",
        ["idempotency_key", "filed_at"],
        ["filed_at", "idempotency_key"],
    ),
)
# SQLite's table rebuild loses an index's WHERE: handler_runs' partial indexes are made again.
PENDING = "state = 'pending'"
PARTIAL_INDEXES = (
    ("ix_handler_runs_pending_due_at_id", ["due_at", "id"], PENDING),
    ("ix_handler_runs_pending_handler_due_at_id", ["handler", "due_at", "id"], PENDING),
    ("ix_handler_runs_running_lease_expires_at", ["lease_expires_at"], "state = 'running'"),
)


def upgrade() -> None:
    for table, name, _, columns in KEYS:
        _replace_unique(table, name, columns)


def downgrade() -> None:
    for table, name, columns, _ in KEYS:
        _replace_unique(table, name, columns)


def _replace_unique(table: str, name: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(name, table, type_="unique")
        op.create_unique_constraint(name, table, columns)
        return
    with _partial_indexes_kept(table), op.batch_alter_table(table) as batch:
        batch.drop_constraint(name, type_="unique")
        batch.create_unique_constraint(name, columns)


@contextmanager
def _partial_indexes_kept(table: str) -> Iterator[None]:
    if table != "handler_runs":
        yield
        return
    for name, _, _ in PARTIAL_INDEXES:
        op.drop_index(name, table_name=table)
    yield
    for name, columns, where in PARTIAL_INDEXES:
        op.create_index(name, table, columns, sqlite_where=sa.text(where))
