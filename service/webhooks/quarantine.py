"""Quarantined deliveries: list them; replay one (as stored, or fixed) through the normal ingest."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_
from sqlalchemy.orm import Session, defer

from service.errors import RejectedBody
from service.jobs.deliveries import HandlersFor, JobDelivery
from service.jobs.ingest import ingest_job
from service.jobs.schemas import validate_job
from service.members.cross_source import DEFAULT_RULES, CrossSourceRules
from service.members.data_updates import DataUpdateDelivery, ingest_data_update
from service.members.ingest import MemberDelivery, ingest_member_event
from service.members.schemas import validate_connection_status
from service.members.statuses import connection_handlers
from service.members.webhook_schemas import validate_data_update, validate_member
from service.platform.db import UTCDateTime
from service.platform.models import columns_of
from service.platform.outcomes import IngestResult
from service.platform.pages import Position, page_of
from service.webhooks.errors import ReplayRefused
from service.webhooks.kinds import ANY_KIND_ENDPOINT, WebhookKind, webhook_kind
from service.webhooks.models import RejectedDelivery
from service.webhooks.payload import parse_json
from service.webhooks.schemas import RejectedDeliveryOut

REPLAYABLE_ENDPOINTS = frozenset({*WebhookKind, ANY_KIND_ENDPOINT})


@dataclass(frozen=True)
class Rejection:
    endpoint: str
    status_code: int
    reason: str
    details: list[dict[str, str]]
    content_type: str | None
    delivery_id: str | None
    body: bytes
    body_truncated: bool
    received_at: datetime


def quarantine(session: Session, rejection: Rejection) -> int:
    """Keep an authenticated body we refused, so nothing MX sent is lost."""
    row = RejectedDelivery(
        endpoint=rejection.endpoint,
        received_at=rejection.received_at,
        status_code=rejection.status_code,
        reason=rejection.reason,
        details=rejection.details,
        content_type=rejection.content_type,
        delivery_id=rejection.delivery_id,
        body=rejection.body,
        body_truncated=rejection.body_truncated,
    )
    session.add(row)
    session.flush()
    return row.id


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
        result = _ingest(session, rejected, document, now, handlers_for, rules)
    except RejectedBody as error:
        problems = "; ".join(f"{p.field or 'body'}: {p.message}" for p in error.details)
        raise ReplayRefused(
            f"still invalid: {error.message}{' — ' + problems if problems else ''}"
        ) from None
    rejected.replayed_at = now
    return ReplayOutcome(rejected_id, result)


def _ingest(
    session: Session,
    rejected: RejectedDelivery,
    document: Any,
    now: datetime,
    handlers_for: HandlersFor,
    rules: CrossSourceRules,
) -> IngestResult:
    """As the endpoint it was sent to would have. Member bodies have no time of their own: they
    happened when MX sent them, not now, so a newer status that arrived meanwhile stays current."""
    endpoint = rejected.endpoint
    kind = webhook_kind(document) if endpoint == ANY_KIND_ENDPOINT else WebhookKind(endpoint)
    # The stored webhook-id is a record of what came, not proof: whether a signature covered it
    # is not kept, so a replay is told apart from other deliveries by its body alone.
    delivery_id = None
    if kind is WebhookKind.JOBS:
        job, raw = validate_job(document)
        delivery = JobDelivery(job=job, raw=raw, received_at=now, delivery_id=delivery_id)
        return ingest_job(session, delivery, handlers_for, rules)
    if kind is WebhookKind.DATA_UPDATES:
        update, raw = validate_data_update(document)
        return ingest_data_update(
            session, DataUpdateDelivery(update, raw, rejected.received_at, delivery_id)
        )
    if kind is WebhookKind.CONNECTION_STATUS:
        callback, raw = validate_connection_status(document)
        report = callback.report()
    else:
        report, raw = validate_member(document)
    member_delivery = MemberDelivery(
        report=report, raw=raw, received_at=rejected.received_at, delivery_id=delivery_id
    )
    return ingest_member_event(session, member_delivery, connection_handlers, rules)


# Reading the quarantine, for the API.

# A page of the list carries bodies up to about this many bytes of JSON in all; the rest are
# served one by one (GET /rejected-deliveries/<id>), so no page can grow a web worker by the whole
# quarantine. A body is sent twice, as text and as base64: it costs 7/3 of its size.
LIST_BODY_BUDGET = 512 * 1024
# The column a page leaves deferred: bodies come by their own query, within the budget.
BODY = frozenset({"body"})


def rejected_position(row: RejectedDelivery) -> Position:
    return Position(row.received_at, row.id)


def rejected_page(
    session: Session, after: Position | None, limit: int
) -> tuple[list[RejectedDeliveryOut], Position | None]:
    """Newest first; bodies only while the page's budget lasts (their sizes always)."""
    statement = select(RejectedDelivery).options(defer(RejectedDelivery.body))
    if after is not None:
        after_key = (literal(after.at, UTCDateTime()), literal(int(after.key)))
        statement = statement.where(
            tuple_(RejectedDelivery.received_at, RejectedDelivery.id) < tuple_(*after_key)
        )
    statement = statement.order_by(
        RejectedDelivery.received_at.desc(), RejectedDelivery.id.desc()
    ).limit(limit + 1)
    rows, next_position = page_of(list(session.scalars(statement)), limit, rejected_position)
    sizes = _body_sizes(session, [row.id for row in rows])
    within: list[int] = []
    spent = 0
    for row in rows:
        size = (sizes.get(row.id) or 0) * 7 // 3
        if spent + size > LIST_BODY_BUDGET:
            break
        spent += size
        within.append(row.id)
    bodies = _bodies(session, within)
    page = [
        rejected_delivery_out(row, bodies.get(row.id), sizes.get(row.id), row.id not in bodies)
        for row in rows
    ]
    return page, next_position


def rejected_delivery(session: Session, rejected_id: int) -> RejectedDeliveryOut | None:
    row = session.get(RejectedDelivery, rejected_id)
    if row is None:
        return None
    body = row.body
    return rejected_delivery_out(row, body, len(body) if body is not None else None, False)


def _body_sizes(session: Session, ids: list[int]) -> dict[int, int | None]:
    if not ids:
        return {}
    statement = select(RejectedDelivery.id, func.length(RejectedDelivery.body)).where(
        RejectedDelivery.id.in_(ids)
    )
    return {row_id: size for row_id, size in session.execute(statement)}


def _bodies(session: Session, ids: list[int]) -> dict[int, bytes]:
    if not ids:
        return {}
    statement = select(RejectedDelivery.id, RejectedDelivery.body).where(
        RejectedDelivery.id.in_(ids), RejectedDelivery.body.is_not(None)
    )
    return {row_id: body for row_id, body in session.execute(statement) if body is not None}


def rejected_delivery_out(
    row: RejectedDelivery, body: bytes | None, size: int | None, omitted: bool
) -> RejectedDeliveryOut:
    # An operator reads the text; replaying needs the exact bytes, invalid UTF-8 included.
    return RejectedDeliveryOut.model_validate(
        {
            **columns_of(row, leave_out=BODY),
            "body_text": body.decode("utf-8", errors="replace") if body is not None else None,
            "body_base64": base64.b64encode(body).decode() if body is not None else None,
            "body_size": size,
            "body_omitted": omitted and size is not None,
        }
    )
