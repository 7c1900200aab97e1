"""Tables: jobs (current state), job_events (history), handler_runs (outbox), quarantine, ..."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.platform.db import BigId, JsonDocument, UTCDateTime

GUID_LENGTH = 255
# A run is owed to exactly one of: a job event, a member event, a member data update.
ONE_OWNER = (
    "(CASE WHEN event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN member_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN data_update_id IS NULL THEN 0 ELSE 1 END) = 1"
)
# None is stored as SQL NULL, not as the JSON document null.
NullableJsonDocument = JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


class Base(DeclarativeBase):
    pass


class JobEvent(Base):
    """One status change as MX reported it; the raw object is kept verbatim."""

    __tablename__ = "job_events"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_job_events_dedup_key"),
        UniqueConstraint("delivery_id", name="uq_job_events_delivery_id"),
        Index("ix_job_events_job_guid_updated_at", "job_guid", "updated_at"),
        Index("ix_job_events_updated_at_status", "updated_at", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_guid: Mapped[str] = mapped_column(String(GUID_LENGTH))
    status: Mapped[int] = mapped_column(Integer)
    status_name: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sha256 of (guid, status, updated_at): MX resends the same body on retry.
    dedup_key: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)


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
    current_event_id: Mapped[int] = mapped_column(BigId, ForeignKey("job_events.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime)


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
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "ix_handler_runs_running_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
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


class RejectedDelivery(Base):
    """An authenticated body we could not accept, kept so an operator can fix and replay it."""

    __tablename__ = "rejected_deliveries"
    __table_args__ = (Index("ix_rejected_deliveries_received_at_id", "received_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    details: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDocument)
    content_type: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    delivery_id: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthFailure(Base):
    """Failed authentications per client address and fixed time window (see ratelimit.py)."""

    __tablename__ = "auth_failures"

    client_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)


class MemberEvent(Base):
    """One CONNECTION_STATUS or MEMBER delivery as MX sent it; the raw body is kept verbatim."""

    __tablename__ = "member_events"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_member_events_dedup_key"),
        UniqueConstraint("delivery_id", name="uq_member_events_delivery_id"),
        Index("ix_member_events_member_guid_event_at", "member_guid", "event_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_guid: Mapped[str] = mapped_column(String(GUID_LENGTH))
    # Which MX webhook carried it: connection_status or member (member_ingest.MemberEventKind).
    kind: Mapped[str] = mapped_column(String(32), server_default="connection_status")
    # A MEMBER webhook's action as sent (created, updated, deleted).
    action: Mapped[str | None] = mapped_column(String(64))
    user_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # The id and name exactly as MX sent them; only a half MX left out is filled from our table.
    connection_status_id: Mapped[int | None] = mapped_column(Integer)
    connection_status: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    connection_status_message: Mapped[str | None] = mapped_column(Text)
    # X-CALLBACK-PAYLOAD: what the partner attached to the Create/Update Member request.
    callback_payload: Mapped[str | None] = mapped_column(Text)
    # The body carries no time; see member_ingest.event_time for where this one came from.
    event_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_at_source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dedup_key: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)


class Member(Base):
    """A member's current connection state: the fields of its event with the latest event_at."""

    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_event_at_guid", "event_at", "guid"),
        Index(
            "ix_members_connection_status_id_event_at_guid",
            "connection_status_id",
            "event_at",
            "guid",
        ),
        Index("ix_members_user_guid_event_at_guid", "user_guid", "event_at", "guid"),
        Index("ix_members_institution_guid_event_at_guid", "institution_guid", "event_at", "guid"),
    )

    guid: Mapped[str] = mapped_column(String(GUID_LENGTH), primary_key=True)
    user_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # Not in the CONNECTION_STATUS body: named by MEMBER webhooks and by the member's jobs.
    institution_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    institution_code: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # Set by a MEMBER webhook whose action is a deletion; the history stays.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connection_status_id: Mapped[int | None] = mapped_column(Integer)
    connection_status: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    connection_status_message: Mapped[str | None] = mapped_column(Text)
    event_at: Mapped[datetime] = mapped_column(UTCDateTime)
    current_event_id: Mapped[int] = mapped_column(BigId, ForeignKey("member_events.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberPrompt(Base):
    """When a member was last prompted, so a job and a connection status prompt the user once."""

    __tablename__ = "member_prompts"

    member_guid: Mapped[str] = mapped_column(String(GUID_LENGTH), primary_key=True)
    handler: Mapped[str] = mapped_column(String(100), primary_key=True)
    # "job" or "connection-status": only the other source's prompt holds a new one back.
    source: Mapped[str] = mapped_column(String(32))
    last_prompted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InstitutionAlert(Base):
    """When operators were last alerted about an institution, so an outage alerts once a window."""

    __tablename__ = "institution_alerts"

    institution_guid: Mapped[str] = mapped_column(String(GUID_LENGTH), primary_key=True)
    last_alerted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    member_count: Mapped[int] = mapped_column(Integer)


class MemberDataUpdate(Base):
    """One data-updated webhook (AGGREGATION, BALANCE, HISTORY, STATEMENT, VERIFICATION, ...)."""

    __tablename__ = "member_data_updates"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_member_data_updates_dedup_key"),
        UniqueConstraint("delivery_id", name="uq_member_data_updates_delivery_id"),
        Index("ix_member_data_updates_member_guid_event_at_id", "member_guid", "event_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_guid: Mapped[str] = mapped_column(String(GUID_LENGTH))
    user_guid: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    # MX's `type` as sent; MX says more types may come.
    data_type: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_on: Mapped[str | None] = mapped_column(String(32))
    # completed_at, or our clock when MX left it out: the order the member page lists them in.
    event_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sha256 of (type, member, completed_at): MX resends the same body on retry.
    dedup_key: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(GUID_LENGTH))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
