"""The one function that turns what a verified, validated CONNECTION_STATUS or MEMBER webhook
says about a member into committed rows."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, not_, or_, select, update
from sqlalchemy.orm import Session

from service.jobs.models import Job
from service.members.cross_source import (
    DEFAULT_RULES,
    OUTAGE_HANDLER,
    CrossSourceRules,
    PromptSource,
    claim_institution_alert,
    end_prompts,
    members_in_outage,
    unprompted,
)
from service.members.models import Member, MemberEvent
from service.members.statuses import (
    CHALLENGED_NAME,
    connection_status,
    disagrees_with_table,
    is_outage_signal,
    resolved_status,
)
from service.outbox.enqueue import RunOwner, queue_runs
from service.platform.db import insert_for
from service.platform.delivery_ids import DeliveryKind, claim_delivery_id
from service.platform.logs import log
from service.platform.metrics import record_status_table_disagreement
from service.platform.outcomes import IngestResult, Outcome

ConnectionHandlersFor = Callable[[int | None, str | None], Sequence[str]]
logger = logging.getLogger("jobhooks.members")


class MemberEventKind(StrEnum):
    """Which MX webhook told us about the member."""

    CONNECTION_STATUS = "connection_status"
    MEMBER = "member"


# Each webhook prompts under its own name: a prompt from one holds back the others' in a window.
PROMPT_SOURCES = {
    MemberEventKind.CONNECTION_STATUS: PromptSource.CONNECTION_STATUS,
    MemberEventKind.MEMBER: PromptSource.MEMBER,
}


class EventTimeSource(StrEnum):
    BODY = "body"  # a timestamp MX put in the body (none today; kept for when it does)
    SIGNATURE = "signature"  # webhook-timestamp of a delivery whose signature we verified
    RECEIVED = "received"  # our clock when the delivery arrived


@dataclass(frozen=True)
class MemberReport:
    """What one webhook says about a member, whichever of MX's webhooks carried it."""

    kind: MemberEventKind
    member_guid: str
    user_guid: str | None = None
    institution_guid: str | None = None
    institution_code: str | None = None
    connection_status_id: int | None = None
    connection_status: str | None = None
    connection_status_message: str | None = None
    # MX's own time of the change, when the body has one.
    reported_at: datetime | None = None
    action: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class MemberDelivery:
    report: MemberReport
    raw: dict[str, Any]
    received_at: datetime
    delivery_id: str | None = None
    # Set only when a Standard Webhooks signature over the body and this time was verified.
    signed_at: datetime | None = None
    # X-CALLBACK-PAYLOAD, stored with the event.
    callback_payload: str | None = None


@dataclass(frozen=True)
class MemberStatus:
    """The status as stored: id and name resolved from each other where MX's list knows them."""

    code: int | None
    name: str | None
    message: str | None
    # A MEMBER webhook reporting a deletion; a later event of any kind undoes it.
    deleted: bool = False


def event_time(delivery: MemberDelivery) -> tuple[datetime, EventTimeSource]:
    """Neither body dates the change: MX's own time if it ever sends one, else the time MX
    signed the delivery, else ours. Only the first survives MX's retries unchanged."""
    reported = delivery.report.reported_at
    if reported is not None:
        return reported, EventTimeSource.BODY
    if delivery.signed_at is not None:
        return delivery.signed_at, EventTimeSource.SIGNATURE
    return delivery.received_at, EventTimeSource.RECEIVED


def member_status(report: MemberReport) -> MemberStatus:
    """The status as MX sent it; a disagreement with our table is logged and counted, since a
    table out of date would otherwise decide handlers silently."""
    sent_code, sent_name = report.connection_status_id, report.connection_status
    if disagrees_with_table(sent_code, sent_name):
        known = connection_status(sent_code, sent_name)
        log(
            logger,
            "connection status id and name disagree with the status table; trusting the name",
            logging.WARNING,
            member_guid=report.member_guid,
            connection_status_id=sent_code,
            connection_status=sent_name,
            table_id_for_name=known.code if known else None,
        )
        record_status_table_disagreement(sent_code, known.name if known else "unknown")
    code, name = resolved_status(sent_code, sent_name)
    return MemberStatus(code, name, report.connection_status_message, report.deleted)


def member_dedup_key(
    member_guid: str, status: MemberStatus, event_at: datetime, source: EventTimeSource
) -> str:
    """(member, status, time) names one change only when MX gave the time; a time from a
    signature or our clock differs on every retry, so such events are told apart by
    webhook-id and by the same-as-current rule instead, and get a key of their own."""
    if source is EventTimeSource.BODY:
        identity = "\x1f".join(
            (
                member_guid,
                str(status.code),
                str(status.name),
                str(status.deleted),
                event_at.isoformat(),
            )
        )
    else:
        identity = f"{member_guid}\x1f{source.value}\x1f{uuid.uuid4().hex}"
    return hashlib.sha256(identity.encode()).hexdigest()


def ingest_member_event(
    session: Session,
    delivery: MemberDelivery,
    handlers_for: ConnectionHandlersFor,
    rules: CrossSourceRules = DEFAULT_RULES,
) -> IngestResult:
    """Store the event, move the member's current state forward if it is newest, queue its
    handlers.

    A delivery that repeats the current state (same status, message and deletion) is a retry,
    not a transition: it leaves nothing behind but the institution it names. Call inside one
    transaction: the caller commits before answering MX.
    """
    report = delivery.report
    status = member_status(report)
    event_at, source = event_time(delivery)
    event_id = _insert_event(session, delivery, status, event_at, source)
    if event_id is None:
        _learn_institution(session, report)
        return IngestResult(Outcome.DUPLICATE)
    advanced = _advance_member(session, delivery, status, event_at, event_id)
    if advanced is not None:
        institution_guid: str | None = advanced.institution_guid
        run_ids = _queue_member_runs(
            session, delivery, status, event_id, institution_guid, handlers_for, rules
        )
        return IngestResult(Outcome.ACCEPTED, event_id, run_ids)
    _learn_institution(session, report)
    # The upsert locked the member row, so what it holds now is what this event lost to.
    current, current_kind = session.execute(
        select(Member, MemberEvent.kind)
        .join(MemberEvent, MemberEvent.id == Member.current_event_id)
        .where(Member.guid == report.member_guid)
    ).one()
    # MX sends MEMBER and CONNECTION_STATUS for one change: the second is history, not a retry.
    if current_kind != report.kind or not is_retry(status, event_at, source, current):
        return IngestResult(Outcome.STALE, event_id)
    session.execute(delete(MemberEvent).where(MemberEvent.id == event_id))
    return IngestResult(Outcome.DUPLICATE)


def is_retry(
    status: MemberStatus, event_at: datetime, source: EventTimeSource, current: Member
) -> bool:
    """A delivery repeating the current state is a retry, not a transition, unless MX dated it
    earlier: then it is a real, older change that arrived late.

    Copies of one delivery without MX's time get their time here, on arrival, so the copy that
    commits second may carry the earlier time; it is a retry all the same.
    """
    same = (
        current.connection_status_id == status.code
        and current.connection_status == status.name
        and current.connection_status_message == status.message
        and (current.deleted_at is not None) == status.deleted
    )
    return same and (source is not EventTimeSource.BODY or event_at >= current.event_at)


def _insert_event(
    session: Session,
    delivery: MemberDelivery,
    status: MemberStatus,
    event_at: datetime,
    source: EventTimeSource,
) -> int | None:
    report = delivery.report
    # MX re-signs each retry, so a copy's event_at, hence its partition, may differ: the
    # webhook-id is held unique apart.
    if not claim_delivery_id(
        session, DeliveryKind.MEMBER, delivery.delivery_id, delivery.received_at
    ):
        return None
    # Unique keys, not a read-then-write, so two racing copies of one delivery store one row.
    statement = (
        insert_for(session, MemberEvent)
        .values(
            member_guid=report.member_guid,
            kind=report.kind.value,
            action=report.action,
            user_guid=report.user_guid,
            connection_status_id=status.code,
            connection_status=status.name,
            connection_status_message=status.message,
            callback_payload=delivery.callback_payload,
            event_at=event_at,
            event_at_source=source.value,
            received_at=delivery.received_at,
            dedup_key=member_dedup_key(report.member_guid, status, event_at, source),
            delivery_id=delivery.delivery_id,
            payload=delivery.raw,
        )
        .on_conflict_do_nothing()
        .returning(MemberEvent.id)
    )
    return session.execute(statement).scalar_one_or_none()


def _advance_member(
    session: Session,
    delivery: MemberDelivery,
    status: MemberStatus,
    event_at: datetime,
    event_id: int,
) -> Any:
    """Upsert the member only if this event is at least as new and changes something; the new
    row (guid, institution_guid) when it did, None when it did not."""
    report = delivery.report
    insert = insert_for(session, Member)
    values: dict[str, Any] = {
        "guid": report.member_guid,
        "user_guid": report.user_guid,
        "institution_guid": _institution_of(report),
        "institution_code": report.institution_code,
        "connection_status_id": status.code,
        "connection_status": status.name,
        "connection_status_message": status.message,
        "deleted_at": event_at if status.deleted else None,
        "event_at": event_at,
        "current_event_id": event_id,
        "received_at": delivery.received_at,
        "first_received_at": delivery.received_at,
    }
    excluded = insert.excluded
    changes: dict[str, Any] = {
        name: excluded[name] for name in values if name not in ("guid", "first_received_at")
    }
    # A member never changes owner or institution; a body that omits them must not erase them.
    for owner in ("user_guid", "institution_guid", "institution_code"):
        changes[owner] = func.coalesce(excluded[owner], getattr(Member, owner))
    statement = (
        insert.values(**values)
        .on_conflict_do_update(
            index_elements=[Member.guid],
            set_=changes,
            where=and_(excluded.event_at >= Member.event_at, not_(_same_state(excluded))),
        )
        .returning(Member.guid, Member.institution_guid)
    )
    return session.execute(statement).first()


def _same_state(excluded: Any) -> ColumnElement[bool]:
    return and_(
        Member.connection_status_id.is_not_distinct_from(excluded.connection_status_id),
        Member.connection_status.is_not_distinct_from(excluded.connection_status),
        Member.connection_status_message.is_not_distinct_from(excluded.connection_status_message),
        or_(
            and_(Member.deleted_at.is_(None), excluded.deleted_at.is_(None)),
            and_(Member.deleted_at.is_not(None), excluded.deleted_at.is_not(None)),
        ),
    )


def _institution_of(report: MemberReport) -> Any:
    """The body's institution (MEMBER webhooks name it), else the one the member's jobs name."""
    if report.institution_guid is not None:
        return report.institution_guid
    return (
        select(Job.institution_guid)
        .where(Job.member_guid == report.member_guid, Job.institution_guid.is_not(None))
        .limit(1)
        .scalar_subquery()
    )


def _learn_institution(session: Session, report: MemberReport) -> None:
    """A MEMBER webhook names the institution even when it changes nothing else; a member
    belongs to one institution for life, so what is known already stays."""
    if report.institution_guid is None and report.institution_code is None:
        return
    session.execute(
        update(Member)
        .where(Member.guid == report.member_guid)
        .values(
            institution_guid=func.coalesce(Member.institution_guid, report.institution_guid),
            institution_code=func.coalesce(Member.institution_code, report.institution_code),
        )
    )


def _queue_member_runs(
    session: Session,
    delivery: MemberDelivery,
    status: MemberStatus,
    event_id: int,
    institution_guid: str | None,
    handlers_for: ConnectionHandlersFor,
    rules: CrossSourceRules,
) -> list[int]:
    report = delivery.report
    member_guid = report.member_guid
    now = delivery.received_at
    known = connection_status(status.code, status.name)
    if status.deleted or known is None or known.name != CHALLENGED_NAME:
        end_prompts(session, [member_guid])
    if status.deleted:
        # Nobody is left to prompt, and a deleted member is no sign of an institution outage.
        return []
    handlers = unprompted(
        session,
        member_guid,
        handlers_for(status.code, status.name),
        PROMPT_SOURCES[report.kind],
        now,
        rules.prompt_window,
    )
    owner = RunOwner(
        member_event_id=event_id, member_guid=member_guid, filed_at=event_time(delivery)[0]
    )
    run_ids = queue_runs(session, owner, handlers, now)
    if is_outage_signal(status.code, status.name) and institution_guid is not None:
        run_ids += _outage_alert(session, owner, institution_guid, now, rules)
    return run_ids


def _outage_alert(
    session: Session,
    owner: RunOwner,
    institution_guid: str,
    now: datetime,
    rules: CrossSourceRules,
) -> list[int]:
    """One alert for the institution when enough of its members are in outage at once."""
    members = members_in_outage(session, institution_guid, now - rules.outage_window)
    if members < rules.outage_threshold:
        return []
    if not claim_institution_alert(session, institution_guid, members, now, rules.outage_window):
        return []
    context = {
        "institution_guid": institution_guid,
        "member_count": members,
        "window_seconds": int(rules.outage_window.total_seconds()),
    }
    return queue_runs(session, replace(owner, context=context), [OUTAGE_HANDLER], now)
