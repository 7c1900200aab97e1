"""The member tables: member_events (CONNECTION_STATUS and MEMBER webhooks), members (current
state), member_data_updates, and the windows of the cross-source rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.platform.db import BigId, JsonDocument, UTCDateTime
from service.platform.models import GUID_LENGTH, Base


class MemberEvent(Base):
    """One CONNECTION_STATUS or MEMBER delivery as MX sent it; the raw body is kept verbatim."""

    __tablename__ = "member_events"
    __table_args__ = (
        # event_at is the partition key; a dedup_key names event_at whenever MX dated the event.
        # delivery_id is unique through delivery_ids: a retry's event_at may differ.
        UniqueConstraint("event_at", "dedup_key", name="uq_member_events_dedup_key"),
        Index("ix_member_events_member_guid_event_at", "member_guid", "event_at"),
        {"postgresql_partition_by": "RANGE (event_at)"},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_guid: Mapped[str] = mapped_column(String(GUID_LENGTH))
    # Which MX webhook carried it: connection_status or member (members.ingest.MemberEventKind).
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
    # The body carries no time; see members.ingest.event_time for where this one came from.
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
    # No foreign key: member_events is partitioned; retention keeps every member's current event.
    current_event_id: Mapped[int] = mapped_column(BigId)
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
