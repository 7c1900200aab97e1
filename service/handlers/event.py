"""The typed events a handler receives (a job's or a member's), and the handler signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.jobs.schemas import JobCallback
from service.members.schemas import ConnectionStatusCallback


@dataclass(frozen=True)
class PreviousState:
    """The job's state just before this event: its previous event by updated_at."""

    status: int
    status_name: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class HandlerEvent:
    run_id: int
    handler: str
    # Stable for the run across every attempt and worker, so receivers can drop repeats.
    idempotency_key: str
    attempt: int
    event_id: int
    received_at: datetime
    job: JobCallback
    previous: PreviousState | None
    # The job object exactly as MX sent it (unknown fields included); None once purged.
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class PreviousConnection:
    """The member's connection status just before this event: its previous event by event_at."""

    connection_status_id: int | None
    connection_status: str | None
    event_at: datetime


@dataclass(frozen=True)
class InstitutionOutage:
    """Why an institution alert was queued: this many members in outage within the window."""

    institution_guid: str
    member_count: int
    window_seconds: int


@dataclass(frozen=True)
class MemberHandlerEvent:
    """What a handler receives for a run owed to a member's CONNECTION_STATUS or MEMBER event."""

    run_id: int
    handler: str
    # Stable for the run across every attempt and worker, so receivers can drop repeats.
    idempotency_key: str
    attempt: int
    event_id: int  # the member event's id (member_events), not a job event's
    received_at: datetime
    event_at: datetime
    # The member's status as stored: as MX sent it, a half MX left out filled from MX's table.
    member: ConnectionStatusCallback
    # Named by MEMBER webhooks and the member's job callbacks; None until one of them names it.
    institution_guid: str | None
    previous: PreviousConnection | None
    # Set only on the alert the institution-outage rule queues.
    outage: InstitutionOutage | None
    # The body exactly as MX sent it (unknown fields included); None once purged.
    payload: dict[str, Any] | None
    # Which webhook carried it: connection_status or member.
    source: str = "connection_status"


@dataclass(frozen=True)
class DataUpdateHandlerEvent:
    """What a handler receives for a run owed to a data-updated webhook: which data to fetch."""

    run_id: int
    handler: str
    # Stable for the run across every attempt and worker, so receivers can drop repeats.
    idempotency_key: str
    attempt: int
    data_update_id: int
    received_at: datetime
    member_guid: str
    user_guid: str | None
    institution_guid: str | None
    # MX's type: AGGREGATION, BALANCE, HISTORY, STATEMENT, VERIFICATION, or one MX adds later.
    data_type: str
    completed_at: datetime | None
    completed_on: str | None
    # Every *_count field MX sent (transactions_created_count, ...).
    counts: dict[str, int]
    # VERIFICATION names the verified accounts.
    accounts: list[str] | None
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class CircuitAlertEvent:
    """The operator alert the outbox raises when a handler's circuit opens: its receiver keeps
    failing, and its runs wait until a probe succeeds."""

    run_id: int
    handler: str
    idempotency_key: str
    attempt: int
    received_at: datetime
    failing_handler: str
    failures: int
    cooldown_seconds: float
    last_error: str


AnyHandlerEvent = HandlerEvent | MemberHandlerEvent | DataUpdateHandlerEvent | CircuitAlertEvent


# A handler returns on success and raises on failure; the worker retries what raises. Handlers
# planned for job statuses only ever receive a HandlerEvent; the built-ins also serve members.
Handler = Callable[[AnyHandlerEvent], None]
