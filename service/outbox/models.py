"""The outbox table: handler_runs, one row per handler owed to an event, and the states a run
moves through."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.platform.db import BigId, UTCDateTime
from service.platform.models import GUID_LENGTH, Base, NullableJsonDocument

# A run is owed to exactly one of: a job event, a member event, a member data update.
ONE_OWNER = (
    "(CASE WHEN event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN member_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN data_update_id IS NULL THEN 0 ELSE 1 END) = 1"
)


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


class AttemptResult(StrEnum):
    """How one attempt ended, as the worker counts it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # another attempt is scheduled
    DEAD = "dead"  # no attempts left


def in_state(state: RunState) -> Any:
    """The partial indexes' condition: runs in one state."""
    return text(f"state = '{state.value}'")


class HandlerRun(Base):
    """A handler owed to an event (a job's, a member's, or a member's data update): written with
    the event, claimed and run by a worker."""

    __tablename__ = "handler_runs"
    __table_args__ = (
        UniqueConstraint("event_id", "handler", name="uq_handler_runs_event_handler"),
        UniqueConstraint("member_event_id", "handler", name="uq_handler_runs_member_event_handler"),
        UniqueConstraint("data_update_id", "handler", name="uq_handler_runs_data_update_handler"),
        UniqueConstraint("idempotency_key", name="uq_handler_runs_idempotency_key"),
        CheckConstraint(ONE_OWNER, name="ck_handler_runs_one_owner"),
        Index("ix_handler_runs_state_due_at", "state", "due_at"),
        # The worker's claims, each an index range scan in its own order (migration 0005).
        Index(
            "ix_handler_runs_pending_due_at_id",
            "due_at",
            "id",
            postgresql_where=in_state(RunState.PENDING),
            sqlite_where=in_state(RunState.PENDING),
        ),
        Index(
            "ix_handler_runs_running_lease_expires_at",
            "lease_expires_at",
            postgresql_where=in_state(RunState.RUNNING),
            sqlite_where=in_state(RunState.RUNNING),
        ),
        Index("ix_handler_runs_job_guid", "job_guid"),
        Index("ix_handler_runs_member_guid", "member_guid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Exactly one of event_id (a job event), member_event_id (a CONNECTION_STATUS or MEMBER
    # event) and data_update_id (a data-updated webhook).
    event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("job_events.id"))
    member_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("member_events.id"))
    data_update_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("member_data_updates.id"))
    job_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # Set for member events and for job events of a job that names its member.
    member_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # What the rule that queued the run knew, when the event alone does not say (outage counts).
    context: Mapped[dict[str, Any] | None] = mapped_column(NullableJsonDocument)
    handler: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    last_error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(GUID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first claimed by a worker
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
