"""The job tables: job_events (every status change, as MX sent it) and jobs (current state)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.platform.db import BigId, JsonDocument, UTCDateTime
from service.platform.models import GUID_LENGTH, Base
from service.platform.partitions import UNDATED

# A job in one of these has finished even when MX left finished_at out: COMPLETED, PREVENTED,
# DENIED, HALTED.
FINISHED_JOB_STATUSES = (6, 7, 8, 9)
# A job not finished yet, as SQL for the partial index and retention's reads.
UNFINISHED = (
    "finished_at IS NULL AND status NOT IN "
    f"({', '.join(str(status) for status in FINISHED_JOB_STATUSES)})"
)


class JobEvent(Base):
    """One status change as MX reported it; the raw object is kept verbatim."""

    __tablename__ = "job_events"
    __table_args__ = (
        # A unique key must hold the partition key (PostgreSQL requires it): filed_at is a
        # function of the body, so every copy of one body meets its twin in one partition.
        # webhook-ids are held unique in delivery_ids (service/platform/delivery_ids.py).
        # filed_at leads, so new keys land at the index's end (migration 0011).
        UniqueConstraint("filed_at", "dedup_key", name="uq_job_events_dedup_key"),
        Index("ix_job_events_job_guid_updated_at", "job_guid", "updated_at"),
        Index("ix_job_events_updated_at_status", "updated_at", "status"),
        {"postgresql_partition_by": "RANGE (filed_at)"},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_guid: Mapped[str] = mapped_column(String(GUID_LENGTH))
    status: Mapped[int] = mapped_column(Integer)
    status_name: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # The institution the event is counted under in job_status_counts (the callback's, else its
    # job's when it was stored, "" for none), so a short window is counted per institution
    # without a lookup of each event's job; NULL for events stored before migration 0012.
    institution_key: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sha256 of (guid, status, updated_at): MX resends the same body on retry.
    dedup_key: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    # The partition key (service/platform/partitions.py): MX's updated_at, which a retry repeats,
    # or UNDATED for a body without one. PostgreSQL's primary key is (id, filed_at).
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _filed_at_of_first_state(context: Any) -> datetime:
    """A job written without a filed_at (not by ingest) is filed under its own MX time."""
    return context.get_current_parameters().get("updated_at") or UNDATED


class Job(Base):
    """A job's current state: the fields of its event with the latest updated_at."""

    __tablename__ = "jobs"
    # Each ends in (updated_at, guid), the keyset order of GET /jobs (migration 0002).
    __table_args__ = (
        Index("ix_jobs_updated_at_guid", "updated_at", "guid"),
        Index("ix_jobs_member_guid_updated_at_guid", "member_guid", "updated_at", "guid"),
        Index("ix_jobs_user_guid_updated_at_guid", "user_guid", "updated_at", "guid"),
        Index("ix_jobs_institution_guid_updated_at_guid", "institution_guid", "updated_at", "guid"),
        Index("ix_jobs_status_updated_at_guid", "status", "updated_at", "guid"),
        # The few jobs not finished yet, which retention keeps out of a month it drops without
        # reading the month (migration 0013).
        Index(
            "ix_jobs_unfinished",
            "filed_at",
            postgresql_where=text(UNFINISHED),
            sqlite_where=text(UNFINISHED),
        ),
        {"postgresql_partition_by": "RANGE (filed_at)"},
    )

    guid: Mapped[str] = mapped_column(String(GUID_LENGTH), primary_key=True)
    member_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    user_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    institution_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    status: Mapped[int] = mapped_column(Integer)
    status_name: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    is_authenticated: Mapped[bool | None] = mapped_column(Boolean)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # No foreign key: job_events is partitioned and ages out by partition; retention keeps the
    # current event of every job it keeps (service/webhooks/retention.py).
    current_event_id: Mapped[int] = mapped_column(BigId)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The partition key (service/platform/partitions.py): the MX time of the first status change
    # stored for the job (its event's filed_at), never changed afterwards, so a job lives in one
    # month and ages out with it. PostgreSQL's primary key is (guid, filed_at); ingest finds the
    # filed_at of a stored job under a lock on its guid (service/jobs/filing.py), so two first
    # callbacks either side of a month's start still make one row.
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_filed_at_of_first_state)


class JobStatusCount(Base):
    """Status changes counted per bucket of MX's updated_at (an hour, or a UTC day), so /stats
    reads a few rows per bucket of its window however many events the window holds.

    Each bucket is kept three ways (`breakdown`, service/jobs/rollups.py): per status and
    institution, per status alone, and per institution alone. An answer needs the totals per
    status and per institution, and the pairs only for the few busiest institutions, so it
    never reads every pair of a long window. Each web process adds to its own shard of a key,
    so concurrent batches do not queue on one row lock; a reader sums the shards.
    """

    __tablename__ = "job_status_counts"
    __table_args__ = (
        # The pairs of the few institutions an answer lists, without reading the others'.
        Index(
            "ix_job_status_counts_pairs",
            "institution_key",
            "span_hours",
            "bucket_start",
            postgresql_where=text("breakdown = 0"),
            sqlite_where=text("breakdown = 0"),
        ),
        # By month, as the events they count, so retention drops a month of counts whole.
        {"postgresql_partition_by": "RANGE (bucket_start)"},
    )

    span_hours: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    breakdown: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    # 0 in the per-institution breakdown.
    status: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "" when the event's job names no institution (a key column cannot be NULL), and in the
    # per-status breakdown.
    institution_key: Mapped[str] = mapped_column(String(GUID_LENGTH), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    status_name: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    events: Mapped[int] = mapped_column(BigInteger)
