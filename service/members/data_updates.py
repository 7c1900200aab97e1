"""MX's data-updated webhooks: store each once and queue the handlers that tell the product
backend which data to fetch."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.members.models import MemberDataUpdate
from service.members.webhook_schemas import DataUpdateCallback
from service.outbox.enqueue import RunOwner, queue_runs
from service.platform.db import insert_for
from service.platform.outcomes import IngestResult, Outcome

# Every type, those MX adds later included: new data of any kind is worth fetching.
DATA_UPDATE_HANDLERS = ("data_ready",)


@dataclass(frozen=True)
class DataUpdateDelivery:
    update: DataUpdateCallback
    raw: dict[str, Any]
    received_at: datetime
    delivery_id: str | None = None


def data_update_dedup_key(update: DataUpdateCallback) -> str:
    """MX resends the same body on retry: (type, member, completed_at) names one update. Without
    completed_at only webhook-id can tell a retry, so the row gets a key of its own."""
    if update.completed_at is not None:
        identity = f"{update.type}\x1f{update.member_guid}\x1f{update.completed_at.isoformat()}"
    else:
        identity = f"{update.member_guid}\x1fundated\x1f{uuid.uuid4().hex}"
    return hashlib.sha256(identity.encode()).hexdigest()


def ingest_data_update(session: Session, delivery: DataUpdateDelivery) -> IngestResult:
    """Store the update and queue its runs in the caller's transaction; a repeat adds nothing."""
    update = delivery.update
    statement = (
        insert_for(session, MemberDataUpdate)
        .values(
            member_guid=update.member_guid,
            user_guid=update.user_guid,
            data_type=update.type,
            action=update.action,
            completed_at=update.completed_at,
            completed_on=update.completed_on,
            event_at=update.completed_at or delivery.received_at,
            received_at=delivery.received_at,
            dedup_key=data_update_dedup_key(update),
            delivery_id=delivery.delivery_id,
            payload=delivery.raw,
        )
        .on_conflict_do_nothing()
        .returning(MemberDataUpdate.id)
    )
    update_id = session.execute(statement).scalar_one_or_none()
    if update_id is None:
        return IngestResult(Outcome.DUPLICATE)
    owner = RunOwner(
        data_update_id=update_id,
        member_guid=update.member_guid,
        filed_at=update.completed_at or delivery.received_at,
    )
    run_ids = queue_runs(session, owner, DATA_UPDATE_HANDLERS, delivery.received_at)
    return IngestResult(Outcome.ACCEPTED, update_id, run_ids)
