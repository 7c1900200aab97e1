"""The outbox table: handler_runs, one row per handler owed to an event, and the states a run
moves through."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
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

# A run is owed to at most one of: a job event, a member event, a member data update. None: an
# operator alert the outbox raised itself (a circuit that opened), described by its context.
AT_MOST_ONE_OWNER = (
    "(CASE WHEN event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN member_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN data_update_id IS NULL THEN 0 ELSE 1 END) <= 1"
)


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    # Not delivered because it no longer mattered: its event was overtaken (superseded) or it
    # waited longer than its handler's maximum age (expired). Neither is a failure.
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


FINISHED_STATES = (RunState.SUCCEEDED, RunState.DEAD, RunState.SUPERSEDED, RunState.EXPIRED)


class CircuitState(StrEnum):
    CLOSED = "closed"  # deliveries flow
    OPEN = "open"  # too many failures in a row: nothing is tried until open_until
    HALF_OPEN = "half_open"  # one probe is out; its outcome closes or reopens the circuit


class AttemptResult(StrEnum):
    """How one attempt ended, as the worker counts it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # another attempt is scheduled
    DEAD = "dead"  # no attempts left
    # Claimed but not attempted: it no longer mattered (see outbox/relevance.py).
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


def in_state(state: RunState) -> Any:
    """The partial indexes' condition: runs in one state."""
    return text(f"state = '{state.value}'")


class HandlerRun(Base):
    """A handler owed to an event (a job's, a member's, or a member's data update): written with
    the event, claimed and run by a worker."""

    __tablename__ = "handler_runs"
    __table_args__ = (
        # filed_at (the partition key) follows from the owner, so each key is as exact as before.
        UniqueConstraint("event_id", "handler", "filed_at", name="uq_handler_runs_event_handler"),
        UniqueConstraint(
            "member_event_id", "handler", "filed_at", name="uq_handler_runs_member_event_handler"
        ),
        UniqueConstraint(
            "data_update_id", "handler", "filed_at", name="uq_handler_runs_data_update_handler"
        ),
        UniqueConstraint("filed_at", "idempotency_key", name="uq_handler_runs_idempotency_key"),
        CheckConstraint(AT_MOST_ONE_OWNER, name="ck_handler_runs_at_most_one_owner"),
        Index("ix_handler_runs_state_due_at", "state", "due_at"),
        # The worker's claims, each an index range scan in its own order (migration 0005).
        Index(
            "ix_handler_runs_pending_due_at_id",
            "due_at",
            "id",
            postgresql_where=in_state(RunState.PENDING),
            sqlite_where=in_state(RunState.PENDING),
        ),
        # Claims by lane: the due runs of one handler, oldest first (migration 0007).
        Index(
            "ix_handler_runs_pending_handler_due_at_id",
            "handler",
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
        {"postgresql_partition_by": "RANGE (filed_at)"},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Exactly one of event_id (a job event), member_event_id (a CONNECTION_STATUS or MEMBER
    # event) and data_update_id (a data-updated webhook).
    # Ids without foreign keys: the owners' tables are partitioned or age out on their own, and
    # retention keeps the owner of every run it keeps (service/webhooks/retention.py).
    event_id: Mapped[int | None] = mapped_column(BigId)
    member_event_id: Mapped[int | None] = mapped_column(BigId)
    data_update_id: Mapped[int | None] = mapped_column(BigId)
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
    # The partition key: its owner's (a job event's filed_at, a member event's event_at, a data
    # update's event_at), so runs age out with the event that owes them; created_at without one.
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HandlerState(Base):
    """One handler's delivery state, shared by every worker: paused, its circuit, its rate."""

    __tablename__ = "handler_states"

    handler: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    circuit: Mapped[str] = mapped_column(String(16), default=CircuitState.CLOSED)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # How many times in a row the circuit opened without closing; each opening waits longer.
    openings: Mapped[int] = mapped_column(Integer, default=0)
    open_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probe_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Rate limit: the earliest time the next delivery may start.
    next_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
