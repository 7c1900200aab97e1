"""What the inbound edge keeps: quarantined deliveries and failed-authentication counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.platform.db import BigId, JsonDocument, UTCDateTime
from service.platform.models import GUID_LENGTH, Base


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
    """Failed authentications per client address and fixed time window (webhooks/ratelimit.py)."""

    __tablename__ = "auth_failures"

    client_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
