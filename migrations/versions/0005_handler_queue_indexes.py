"""Partial indexes for the worker's claims: due pending runs, and running runs by lease expiry.

Revision ID: 0005_handler_queue_indexes
Revises: 0004_member_connection_statuses
Create Date: 2026-11-26

Every run moves pending -> running -> succeeded, so the (state, due_at) index fills with entries
of rows that have long left the state, and a claim that OR-ed "pending and due" with "lease
expired" read them all through a bitmap scan (tens of milliseconds of database CPU per claim
after a burst). Each claim condition now has a partial index in its own order: a claim is a
short index range scan, which also marks the dead entries it passes so later scans skip them.
Built CONCURRENTLY on PostgreSQL, so a release does not block ingest.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.platform.migrations import outside_transaction

revision = "0005_handler_queue_indexes"
down_revision = "0004_member_connection_statuses"
branch_labels = None
depends_on = None

INDEXES: tuple[tuple[str, list[str], str], ...] = (
    ("ix_handler_runs_pending_due_at_id", ["due_at", "id"], "state = 'pending'"),
    ("ix_handler_runs_running_lease_expires_at", ["lease_expires_at"], "state = 'running'"),
)


def upgrade() -> None:
    with outside_transaction():
        for name, columns, where in INDEXES:
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
        for name, _, _ in reversed(INDEXES):
            op.drop_index(name, table_name="handler_runs", postgresql_concurrently=True)
