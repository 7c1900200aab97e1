"""History partitioned by month on PostgreSQL, with keys that stay exact across partitions.

- job_events gains filed_at (MX's updated_at, or 1970-01-01 for a body without one): the
  partition key, a function of the body, so a retry meets the first copy in one partition. Its
  dedup key becomes unique as (dedup_key, filed_at), which is as exact: the key names updated_at.
- member_events is partitioned by event_at; its dedup_key is unique as (dedup_key, event_at).
- webhook-ids of job and member events move to delivery_ids, unpartitioned: a retry may differ
  from the first copy in what decides the partition (MX re-signs each attempt; a test edits
  the body), so only a table of their own keeps them unique.
- handler_runs gains filed_at, its owner's partition key (created_at without an owner); each
  unique key gains it, which keeps them as exact as before since the owner decides it.
- The foreign keys to job_events, member_events and member_data_updates go: a foreign key to a
  partitioned table needs the partition key in it, and would forbid dropping old partitions.
  Retention keeps what the remaining rows point at (service/webhooks/retention.py).

PostgreSQL: each table is rebuilt as a partitioned table (a DEFAULT partition and one per month
that holds rows, plus the current one and three ahead) and its rows copied: 27 s for a million
job events (with their 143k jobs and 100k runs) on the development machine (README, "Scaling
out"); the tables are locked meanwhile. SQLite keeps plain tables with the same columns and keys.

Revision ID: 0009_time_partitioned_history
Revises: 0008_job_status_rollups
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0009_time_partitioned_history"
down_revision = "0008_job_status_rollups"
branch_labels = None
depends_on = None

UNDATED = "1970-01-01 00:00:00+00"
SQLITE_UNDATED = "1970-01-01 00:00:00.000000"
MONTHS_AHEAD = 3
# Months further back than this are not given partitions of their own (their rows go to DEFAULT).
MONTHS_BACK = 24
PENDING = "state = 'pending'"
PARTIAL_INDEXES: tuple[tuple[str, list[str], str], ...] = (
    ("ix_handler_runs_pending_due_at_id", ["due_at", "id"], PENDING),
    ("ix_handler_runs_pending_handler_due_at_id", ["handler", "due_at", "id"], PENDING),
    ("ix_handler_runs_running_lease_expires_at", ["lease_expires_at"], "state = 'running'"),
)
FOREIGN_KEYS = (
    ("jobs", "fk_jobs_current_event_id", "current_event_id", "job_events"),
    ("members", "fk_members_current_event_id", "current_event_id", "member_events"),
    ("handler_runs", "fk_handler_runs_event_id", "event_id", "job_events"),
    ("handler_runs", "fk_handler_runs_member_event_id", "member_event_id", "member_events"),
    ("handler_runs", "fk_handler_runs_data_update_id", "data_update_id", "member_data_updates"),
)
# Where each run's owner keeps its partition key.
RUN_FILED_AT = (
    "coalesce("
    "(SELECT e.filed_at FROM job_events e WHERE e.id = handler_runs.event_id),"
    " (SELECT m.event_at FROM member_events m WHERE m.id = handler_runs.member_event_id),"
    " (SELECT d.event_at FROM member_data_updates d WHERE d.id = handler_runs.data_update_id),"
    " handler_runs.created_at)"
)


class Shape(NamedTuple):
    """A table's keys and indexes on one side of this migration."""

    table: str
    key: str
    added: str | None  # the column this migration adds, if any
    uniques: tuple[tuple[str, tuple[str, ...]], ...]
    indexes: tuple[tuple[str, tuple[str, ...], str | None], ...]


PARTITIONED = (
    Shape(
        "job_events",
        "filed_at",
        "filed_at",
        (("uq_job_events_dedup_key", ("dedup_key", "filed_at")),),
        (
            ("ix_job_events_job_guid_updated_at", ("job_guid", "updated_at"), None),
            ("ix_job_events_updated_at_status", ("updated_at", "status"), None),
        ),
    ),
    Shape(
        "member_events",
        "event_at",
        None,
        (("uq_member_events_dedup_key", ("dedup_key", "event_at")),),
        (("ix_member_events_member_guid_event_at", ("member_guid", "event_at"), None),),
    ),
    Shape(
        "handler_runs",
        "filed_at",
        "filed_at",
        (
            ("uq_handler_runs_event_handler", ("event_id", "handler", "filed_at")),
            ("uq_handler_runs_member_event_handler", ("member_event_id", "handler", "filed_at")),
            ("uq_handler_runs_data_update_handler", ("data_update_id", "handler", "filed_at")),
            ("uq_handler_runs_idempotency_key", ("idempotency_key", "filed_at")),
        ),
        (
            ("ix_handler_runs_state_due_at", ("state", "due_at"), None),
            ("ix_handler_runs_job_guid", ("job_guid",), None),
            ("ix_handler_runs_member_guid", ("member_guid",), None),
            *((name, tuple(columns), where) for name, columns, where in PARTIAL_INDEXES),
        ),
    ),
)
PLAIN_UNIQUES = {
    "job_events": (
        ("uq_job_events_dedup_key", ("dedup_key",)),
        ("uq_job_events_delivery_id", ("delivery_id",)),
    ),
    "member_events": (
        ("uq_member_events_dedup_key", ("dedup_key",)),
        ("uq_member_events_delivery_id", ("delivery_id",)),
    ),
    "handler_runs": (
        ("uq_handler_runs_event_handler", ("event_id", "handler")),
        ("uq_handler_runs_member_event_handler", ("member_event_id", "handler")),
        ("uq_handler_runs_data_update_handler", ("data_update_id", "handler")),
        ("uq_handler_runs_idempotency_key", ("idempotency_key",)),
    ),
}


def upgrade() -> None:
    op.create_table(
        "delivery_ids",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("delivery_id", sa.String(255), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_delivery_ids_received_at", "delivery_ids", ["received_at"])
    for kind, table in (("job", "job_events"), ("member", "member_events")):
        op.execute(
            "INSERT INTO delivery_ids (kind, delivery_id, received_at)"  # noqa: S608
            f" SELECT '{kind}', delivery_id, min(received_at) FROM {table}"
            " WHERE delivery_id IS NOT NULL GROUP BY delivery_id"
        )
    if op.get_bind().dialect.name == "postgresql":
        _drop_foreign_keys()
        for shape in PARTITIONED:
            _rebuild_partitioned(shape)
        return
    _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for shape in PARTITIONED:
            _rebuild_plain(shape)
        _create_foreign_keys()
    else:
        _downgrade_sqlite()
    op.drop_table("delivery_ids")


# PostgreSQL -------------------------------------------------------------------------------------


def _drop_foreign_keys() -> None:
    for table, name, _, _ in FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def _create_foreign_keys() -> None:
    for table, name, column, target in FOREIGN_KEYS:
        op.create_foreign_key(name, table, target, [column], ["id"])


def _set_aside(table: str) -> str:
    """Rename the table and its keys out of the way; its sequence stays for the new table."""
    old = f"{table}_unpartitioned"
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey")
    bind = op.get_bind()
    for name in bind.execute(
        sa.text(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'u'"
        ),
        {"t": old},
    ).scalars():
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")
    for name in bind.execute(
        sa.text(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = to_regclass(:t) AND NOT indisprimary"
        ),
        {"t": old},
    ).scalars():
        op.execute(f"DROP INDEX {name}")
    return old


def _rebuild_partitioned(shape: Shape) -> None:
    table, key = shape.table, shape.key
    old = _set_aside(table)
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        f" PARTITION BY RANGE ({key})"
        if shape.added is None
        else f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
        f" {shape.added} timestamptz NOT NULL) PARTITION BY RANGE ({key})"
    )
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    columns = _columns(old)
    source = {
        "job_events": f"coalesce(updated_at, '{UNDATED}')",
        "handler_runs": RUN_FILED_AT.replace("handler_runs.", f"{old}."),
    }
    if shape.added is None:
        copied = ", ".join(columns)
        select = copied
    else:
        copied = ", ".join([*columns, shape.added])
        select = ", ".join([*columns, source[table]])
    for start in _months(old, source.get(table, key)):
        end = _next_month(start)
        op.execute(
            f"CREATE TABLE {table}_p{start:%Y_%m} PARTITION OF {table}"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    op.execute(f"INSERT INTO {table} ({copied}) SELECT {select} FROM {old}")  # noqa: S608
    # Keys and indexes after the copy: building them once is faster than keeping them up per row.
    op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id, {key})")
    for name, unique_columns in shape.uniques:
        op.create_unique_constraint(name, table, list(unique_columns))
    for name, index_columns, where in shape.indexes:
        op.create_index(
            name,
            table,
            list(index_columns),
            postgresql_where=sa.text(where) if where else None,
        )
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ANALYZE {table}")


def _rebuild_plain(shape: Shape) -> None:
    table = shape.table
    old = f"{table}_partitioned"
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
    for name, _ in shape.uniques:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for name, _, _ in shape.indexes:
        op.execute(f"DROP INDEX {name}")
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey")
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    if shape.added is not None:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {shape.added}")
    columns = ", ".join(_columns(table))
    op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")  # noqa: S608
    op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
    for name, unique_columns in PLAIN_UNIQUES[table]:
        op.create_unique_constraint(name, table, list(unique_columns))
    for name, index_columns, where in shape.indexes:
        op.create_index(
            name,
            table,
            list(index_columns),
            postgresql_where=sa.text(where) if where else None,
        )
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    op.execute(f"DROP TABLE {old} CASCADE")


def _columns(table: str) -> list[str]:
    return list(
        op.get_bind()
        .execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t)"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        )
        .scalars()
    )


def _months(table: str, key: str) -> list[datetime]:
    """Months that hold rows in the last MONTHS_BACK, and the current one and MONTHS_AHEAD more."""
    now = datetime.now(UTC)
    current = datetime(now.year, now.month, 1, tzinfo=UTC)
    earliest = current
    for _ in range(MONTHS_BACK):
        earliest = datetime(
            earliest.year - (earliest.month == 1), (earliest.month - 2) % 12 + 1, 1, tzinfo=UTC
        )
    held = op.get_bind().execute(
        sa.text(
            f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') FROM {table}"  # noqa: S608
            f" WHERE {key} >= :earliest"
        ),
        {"earliest": earliest},
    )
    months = {month.replace(tzinfo=UTC) for month in held.scalars()}
    month = current
    for _ in range(MONTHS_AHEAD + 1):
        months.add(month)
        month = _next_month(month)
    return sorted(months)


def _next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


# SQLite -----------------------------------------------------------------------------------------


@contextmanager
def _partial_indexes_rebuilt() -> Iterator[None]:
    """Drop handler_runs' partial indexes before a batch rebuild and create them after it."""
    for name, _, _ in PARTIAL_INDEXES:
        op.drop_index(name, table_name="handler_runs")
    yield
    for name, columns, where in PARTIAL_INDEXES:
        op.create_index(name, "handler_runs", columns, sqlite_where=sa.text(where))


def _upgrade_sqlite() -> None:
    # Referencing tables first: a rebuild of a table that foreign keys point at would delete
    # the rows pointing at it.
    for table in ("jobs", "members"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_current_event_id", type_="foreignkey")
    op.add_column("job_events", sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE job_events SET filed_at = coalesce(updated_at, '{SQLITE_UNDATED}')")
    op.add_column("handler_runs", sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE handler_runs SET filed_at = {RUN_FILED_AT}")
    with _partial_indexes_rebuilt(), op.batch_alter_table("handler_runs") as batch:
        for _, name, _, _ in (key for key in FOREIGN_KEYS if key[0] == "handler_runs"):
            batch.drop_constraint(name, type_="foreignkey")
        for name, _ in PLAIN_UNIQUES["handler_runs"]:
            batch.drop_constraint(name, type_="unique")
        batch.alter_column("filed_at", nullable=False)
        for name, columns in PARTITIONED[2].uniques:
            batch.create_unique_constraint(name, list(columns))
    with op.batch_alter_table("job_events") as batch:
        for name, _ in PLAIN_UNIQUES["job_events"]:
            batch.drop_constraint(name, type_="unique")
        batch.alter_column("filed_at", nullable=False)
        for name, columns in PARTITIONED[0].uniques:
            batch.create_unique_constraint(name, list(columns))
    with op.batch_alter_table("member_events") as batch:
        for name, _ in PLAIN_UNIQUES["member_events"]:
            batch.drop_constraint(name, type_="unique")
        for name, columns in PARTITIONED[1].uniques:
            batch.create_unique_constraint(name, list(columns))


def _downgrade_sqlite() -> None:
    with op.batch_alter_table("member_events") as batch:
        for name, _ in PARTITIONED[1].uniques:
            batch.drop_constraint(name, type_="unique")
        for name, columns in PLAIN_UNIQUES["member_events"]:
            batch.create_unique_constraint(name, list(columns))
    with op.batch_alter_table("job_events") as batch:
        for name, _ in PARTITIONED[0].uniques:
            batch.drop_constraint(name, type_="unique")
        batch.drop_column("filed_at")
        for name, columns in PLAIN_UNIQUES["job_events"]:
            batch.create_unique_constraint(name, list(columns))
    with _partial_indexes_rebuilt(), op.batch_alter_table("handler_runs") as batch:
        for name, _ in PARTITIONED[2].uniques:
            batch.drop_constraint(name, type_="unique")
        batch.drop_column("filed_at")
        for name, columns in PLAIN_UNIQUES["handler_runs"]:
            batch.create_unique_constraint(name, list(columns))
        for table, name, column, target in FOREIGN_KEYS:
            if table == "handler_runs":
                batch.create_foreign_key(name, target, [column], ["id"])
    for table in ("jobs", "members"):
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"fk_{table}_current_event_id",
                f"{table.removesuffix('s')}_events",
                ["current_event_id"],
                ["id"],
            )
