"""The typed events a handler receives for runs owed to a member: its connection-status and
MEMBER events, and its data updates."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.handlers.event import (
    DataUpdateHandlerEvent,
    InstitutionOutage,
    MemberHandlerEvent,
    PreviousConnection,
)
from service.members.ingest import MemberEventKind
from service.members.models import Member, MemberDataUpdate, MemberEvent
from service.members.schemas import ConnectionStatusCallback
from service.members.webhook_schemas import DataUpdateCallback
from service.outbox.models import HandlerRun


def member_handler_event(session: Session, run: HandlerRun) -> MemberHandlerEvent:
    """The stored body with MX's status resolved, the state it replaced, and the member's
    institution as far as its job callbacks have told us."""
    event = session.get_one(MemberEvent, run.member_event_id)
    institution = session.scalar(
        select(Member.institution_guid).where(Member.guid == event.member_guid)
    )
    return MemberHandlerEvent(
        run_id=run.id,
        handler=run.handler,
        idempotency_key=run.idempotency_key,
        attempt=run.attempts,
        event_id=event.id,
        received_at=event.received_at,
        event_at=event.event_at,
        member=_callback(event),
        institution_guid=institution,
        previous=_previous_connection(session, event),
        outage=_outage(run),
        payload=event.payload,
        source=event.kind,
    )


def data_update_handler_event(session: Session, run: HandlerRun) -> DataUpdateHandlerEvent:
    update = session.get_one(MemberDataUpdate, run.data_update_id)
    institution = session.scalar(
        select(Member.institution_guid).where(Member.guid == update.member_guid)
    )
    body = DataUpdateCallback.model_validate(update.payload) if update.payload else None
    return DataUpdateHandlerEvent(
        run_id=run.id,
        handler=run.handler,
        idempotency_key=run.idempotency_key,
        attempt=run.attempts,
        data_update_id=update.id,
        received_at=update.received_at,
        member_guid=update.member_guid,
        user_guid=update.user_guid,
        institution_guid=institution,
        data_type=update.data_type,
        completed_at=update.completed_at,
        completed_on=update.completed_on,
        counts=body.counts if body else {},
        accounts=body.accounts if body else None,
        payload=update.payload,
    )


def _callback(event: MemberEvent) -> ConnectionStatusCallback:
    stored = {
        "member_guid": event.member_guid,
        "user_guid": event.user_guid,
        "connection_status_id": event.connection_status_id,
        "connection_status": event.connection_status,
        "connection_status_message": event.connection_status_message,
    }
    if event.payload is None or event.kind != MemberEventKind.CONNECTION_STATUS:
        # A MEMBER body has another shape, and a purged body is gone: the columns say it all.
        return ConnectionStatusCallback.model_validate(stored)
    return ConnectionStatusCallback.model_validate({**event.payload, **stored})


def _previous_connection(session: Session, event: MemberEvent) -> PreviousConnection | None:
    previous = session.scalars(
        select(MemberEvent)
        .where(MemberEvent.member_guid == event.member_guid, MemberEvent.event_at < event.event_at)
        .order_by(MemberEvent.event_at.desc(), MemberEvent.id.desc())
        .limit(1)
    ).first()
    if previous is None:
        return None
    return PreviousConnection(
        previous.connection_status_id, previous.connection_status, previous.event_at
    )


def _outage(run: HandlerRun) -> InstitutionOutage | None:
    context = run.context or {}
    if "institution_guid" not in context:
        return None
    return InstitutionOutage(
        institution_guid=str(context["institution_guid"]),
        member_count=int(context["member_count"]),
        window_seconds=int(context["window_seconds"]),
    )
