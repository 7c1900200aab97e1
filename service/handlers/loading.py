"""The typed event a worker hands each handler, built from what the database stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from service.handlers.event import (
    AnyHandlerEvent,
    CircuitAlertEvent,
    DataUpdateHandlerEvent,
    HandlerEvent,
    InstitutionOutage,
    MemberHandlerEvent,
    PreviousConnection,
    PreviousState,
)
from service.jobs.models import JobEvent
from service.jobs.schemas import JobCallback
from service.members.ingest import MemberEventKind
from service.members.models import Member, MemberDataUpdate, MemberEvent
from service.members.schemas import ConnectionStatusCallback
from service.members.webhook_schemas import DataUpdateCallback
from service.outbox.models import HandlerRun

JobHistories = dict[str, list[JobEvent]]


def job_histories(session: Session, runs: Sequence[HandlerRun]) -> JobHistories:
    """Every stored event of the runs' jobs, in one query: each run needs its own event and the
    one it replaced, and a job has few events."""
    guids = {run.job_guid for run in runs if run.event_id is not None and run.job_guid}
    histories: JobHistories = {guid: [] for guid in guids}
    if guids:
        for event in session.scalars(select(JobEvent).where(JobEvent.job_guid.in_(guids))):
            histories[event.job_guid].append(event)
    return histories


def handler_event(session: Session, run: HandlerRun, histories: JobHistories) -> AnyHandlerEvent:
    """The typed event for a run: the stored job object (or member connection status) and the
    state it replaced, from `histories` (job_histories of the runs claimed with it)."""
    if run.member_event_id is not None:
        return member_handler_event(session, run)
    if run.data_update_id is not None:
        return data_update_handler_event(session, run)
    if run.event_id is None:
        return circuit_alert_event(run)
    history = histories[str(run.job_guid)]
    event = next(event for event in history if event.id == run.event_id)
    return HandlerEvent(
        **_run_fields(run),
        event_id=event.id,
        received_at=event.received_at,
        job=_job(event),
        previous=_previous_state(event, history),
        payload=event.payload,
    )


def _run_fields(run: HandlerRun) -> dict[str, Any]:
    """What every typed event says of the run it is for."""
    return {
        "run_id": run.id,
        "handler": run.handler,
        "idempotency_key": run.idempotency_key,
        "attempt": run.attempts,
    }


def _institution_of(session: Session, member_guid: str) -> str | None:
    return session.scalar(select(Member.institution_guid).where(Member.guid == member_guid))


def _job(event: JobEvent) -> JobCallback:
    if event.payload is not None:
        return JobCallback.model_validate(event.payload)
    # The raw payload was purged by retention; the columns still say what happened.
    return JobCallback(
        guid=event.job_guid,
        status=event.status,
        status_name=event.status_name,
        updated_at=event.updated_at,
    )


def _previous_state(event: JobEvent, history: Sequence[JobEvent]) -> PreviousState | None:
    """The job's latest event before this one (by updated_at, then id)."""
    if event.updated_at is None:
        return None
    earlier = [
        other
        for other in history
        if other.updated_at is not None and other.updated_at < event.updated_at
    ]
    if not earlier:
        return None
    previous = max(earlier, key=lambda other: (other.updated_at, other.id))
    return PreviousState(previous.status, previous.status_name, previous.updated_at)


def member_handler_event(session: Session, run: HandlerRun) -> MemberHandlerEvent:
    """The stored body with MX's status resolved, the state it replaced, and the member's
    institution as far as its job callbacks have told us."""
    event = session.get_one(MemberEvent, run.member_event_id)
    institution = _institution_of(session, event.member_guid)
    return MemberHandlerEvent(
        **_run_fields(run),
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
    institution = _institution_of(session, update.member_guid)
    body = DataUpdateCallback.model_validate(update.payload) if update.payload else None
    return DataUpdateHandlerEvent(
        **_run_fields(run),
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


def circuit_alert_event(run: HandlerRun) -> CircuitAlertEvent:
    """An owner-less run: the alert about a circuit that opened, described by its context."""
    circuit = (run.context or {}).get("circuit", {})
    return CircuitAlertEvent(
        **_run_fields(run),
        received_at=run.created_at,
        failing_handler=str(circuit.get("handler", "unknown")),
        failures=int(circuit.get("failures", 0)),
        cooldown_seconds=float(circuit.get("cooldown_seconds", 0)),
        last_error=str(circuit.get("last_error", "")),
    )
