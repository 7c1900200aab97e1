"""Indexes for the query API: every job list is an index range scan in (updated_at, guid) order.

Revision ID: 0002_query_indexes
Revises: 0001_initial_schema
Create Date: 2026-11-25

Each jobs index ends in (updated_at, guid), the keyset order of GET /jobs, so a page with one
equality filter reads just the rows it returns. job_events (updated_at, status) serves /stats.
On PostgreSQL the indexes are built CONCURRENTLY so a release against a large, live table does
not block ingest while they build.
"""

from __future__ import annotations

from alembic import op

from service.platform.migrations import outside_transaction

revision = "0002_query_indexes"
down_revision = "0001_initial_schema"
branch_labels = None
depends_on = None

INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("ix_jobs_updated_at_guid", "jobs", ["updated_at", "guid"]),
    ("ix_jobs_member_guid_updated_at_guid", "jobs", ["member_guid", "updated_at", "guid"]),
    ("ix_jobs_user_guid_updated_at_guid", "jobs", ["user_guid", "updated_at", "guid"]),
    (
        "ix_jobs_institution_guid_updated_at_guid",
        "jobs",
        ["institution_guid", "updated_at", "guid"],
    ),
    ("ix_jobs_status_updated_at_guid", "jobs", ["status", "updated_at", "guid"]),
    ("ix_job_events_updated_at_status", "job_events", ["updated_at", "status"]),
    (
        "ix_rejected_deliveries_received_at_id",
        "rejected_deliveries",
        ["received_at", "id"],
    ),
)


# The keyset (received_at, id) index also serves every query the received_at one did.
REPLACED = ("ix_rejected_deliveries_received_at", "rejected_deliveries", ["received_at"])


def upgrade() -> None:
    with outside_transaction():
        for name, table, columns in INDEXES:
            _create(name, table, columns)
        _drop(REPLACED[0], REPLACED[1])


def downgrade() -> None:
    with outside_transaction():
        _create(*REPLACED)
        for name, table, _ in reversed(INDEXES):
            _drop(name, table)


def _create(name: str, table: str, columns: list[str]) -> None:
    # postgresql_* options are ignored by other dialects.
    op.create_index(name, table, columns, postgresql_concurrently=True)


def _drop(name: str, table: str) -> None:
    op.drop_index(name, table_name=table, postgresql_concurrently=True)
