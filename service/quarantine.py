"""Quarantined deliveries: list them; replay one (as stored, or fixed) through the normal ingest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.connection_schemas import validate_connection_status
from service.connection_statuses import connection_handlers
from service.cross_source import CrossSourceRules
from service.errors import RejectedBody
from service.ingest import DEFAULT_RULES, HandlersFor, IngestResult, JobDelivery, ingest_job
from service.member_ingest import ConnectionDelivery, ingest_connection_status
from service.models import RejectedDelivery
from service.payload import parse_json
from service.schemas import validate_job

REPLAYABLE_ENDPOINTS = ("jobs", "connection-status")


class ReplayRefused(Exception):
    """The delivery cannot be replayed: unknown, already replayed, or still invalid."""


@dataclass(frozen=True)
class ReplayOutcome:
    rejected_id: int
    result: IngestResult


def list_rejected(session: Session, limit: int, include_replayed: bool) -> list[RejectedDelivery]:
    statement = select(RejectedDelivery).order_by(RejectedDelivery.id.desc()).limit(limit)
    if not include_replayed:
        statement = statement.where(RejectedDelivery.replayed_at.is_(None))
    return list(session.scalars(statement))


def replay(
    session: Session,
    rejected_id: int,
    handlers_for: HandlersFor,
    fixed_body: bytes | None = None,
    rules: CrossSourceRules = DEFAULT_RULES,
) -> ReplayOutcome:
    """Validate and ingest the stored (or corrected) body as if MX had just sent it."""
    rejected = session.get(RejectedDelivery, rejected_id, with_for_update=True)
    if rejected is None:
        raise ReplayRefused(f"no quarantined delivery with id {rejected_id}")
    if rejected.replayed_at is not None:
        raise ReplayRefused(
            f"delivery {rejected_id} was already replayed at {rejected.replayed_at}"
        )
    if rejected.endpoint not in REPLAYABLE_ENDPOINTS:
        raise ReplayRefused(f"deliveries to {rejected.endpoint!r} cannot be replayed here")
    body = fixed_body if fixed_body is not None else rejected.body
    if body is None:
        raise ReplayRefused(f"the body of delivery {rejected_id} was purged; pass a fixed body")
    if fixed_body is None and rejected.body_truncated:
        raise ReplayRefused(f"delivery {rejected_id} was cut at the size limit; pass a fixed body")
    now = datetime.now(UTC)
    try:
        document = parse_json(body)
        if rejected.endpoint == "connection-status":
            # The body has no time of its own: it happened when MX sent it, not now, so a
            # newer status that arrived meanwhile stays current.
            result = _replay_connection_status(
                session, document, rejected.received_at, rejected.delivery_id, rules
            )
        else:
            result = _replay_job(session, document, now, rejected.delivery_id, handlers_for, rules)
    except RejectedBody as error:
        problems = "; ".join(f"{p.field or 'body'}: {p.message}" for p in error.details)
        raise ReplayRefused(
            f"still invalid: {error.message}{' — ' + problems if problems else ''}"
        ) from None
    rejected.replayed_at = now
    return ReplayOutcome(rejected_id, result)


def _replay_job(
    session: Session,
    document: Any,
    now: datetime,
    delivery_id: str | None,
    handlers_for: HandlersFor,
    rules: CrossSourceRules,
) -> IngestResult:
    job, raw = validate_job(document)
    delivery = JobDelivery(job=job, raw=raw, received_at=now, delivery_id=delivery_id)
    return ingest_job(session, delivery, handlers_for, rules)


def _replay_connection_status(
    session: Session,
    document: Any,
    received_at: datetime,
    delivery_id: str | None,
    rules: CrossSourceRules,
) -> IngestResult:
    callback, raw = validate_connection_status(document)
    delivery = ConnectionDelivery(
        callback=callback, raw=raw, received_at=received_at, delivery_id=delivery_id
    )
    return ingest_connection_status(session, delivery, connection_handlers, rules)
