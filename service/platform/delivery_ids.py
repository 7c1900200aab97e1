"""Webhook-ids already stored, one table for every partition of the history tables.

A webhook-id names one message however many times MX sends it, and a retry may differ from the
first copy in what decides its partition (a re-signed timestamp, an edited body), so the
partitioned tables cannot hold the id unique themselves. Retention deletes ids with the
history they stood for (service/webhooks/retention.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.platform.db import UTCDateTime, insert_for
from service.platform.models import GUID_LENGTH, Base


class DeliveryKind(StrEnum):
    """Whose history an id belongs to: each endpoint keeps its own ids, as before partitions."""

    JOB = "job"
    MEMBER = "member"


class DeliveryId(Base):
    __tablename__ = "delivery_ids"
    __table_args__ = (Index("ix_delivery_ids_received_at", "received_at"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(GUID_LENGTH), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


def claim_delivery_id(
    session: Session, kind: DeliveryKind, delivery_id: str | None, received_at: datetime
) -> bool:
    """Whether the id is new (or absent): a unique key, not a read-then-write, so of two racing
    copies exactly one claims it."""
    if delivery_id is None:
        return True
    statement = (
        insert_for(session, DeliveryId)
        .values(kind=kind.value, delivery_id=delivery_id, received_at=received_at)
        .on_conflict_do_nothing()
        .returning(DeliveryId.delivery_id)
    )
    return session.execute(statement).first() is not None
