"""Read-side queries over jobs, events and handler runs, as plain functions of a session."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import HandlerRun, Job, JobEvent
from service.schemas import EventOut, HandlerRunOut, JobDetailOut, JobOut


def job_out(job: Job) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)


def job_detail(session: Session, guid: str) -> JobDetailOut | None:
    job = session.get(Job, guid)
    if job is None:
        return None
    events = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_guid == guid)
        .order_by(JobEvent.updated_at.asc().nulls_first(), JobEvent.id.asc())
    )
    runs = session.scalars(
        select(HandlerRun).where(HandlerRun.job_guid == guid).order_by(HandlerRun.id.asc())
    )
    return JobDetailOut(
        job=job_out(job),
        history=[
            EventOut(
                id=event.id,
                status=event.status,
                status_name=event.status_name,
                updated_at=event.updated_at,
                received_at=event.received_at,
                current=event.id == job.current_event_id,
                payload=event.payload,
            )
            for event in events
        ],
        handler_runs=[HandlerRunOut.model_validate(run, from_attributes=True) for run in runs],
    )
