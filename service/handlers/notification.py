"""The signed JSON notification the NOTIFY_URL handlers share; each handler adds its action."""

from __future__ import annotations

from typing import Any

from service.handlers.deliveries import Delivery
from service.handlers.event import (
    AnyHandlerEvent,
    CircuitAlertEvent,
    DataUpdateHandlerEvent,
    Handler,
    HandlerEvent,
    MemberHandlerEvent,
)
from service.platform.types import format_utc


def notification(kind: str, action: str, event: AnyHandlerEvent) -> dict[str, Any]:
    """Standard Webhooks payload shape, built from stored data only: every attempt is identical."""
    if isinstance(event, MemberHandlerEvent):
        return member_notification(kind, action, event)
    if isinstance(event, DataUpdateHandlerEvent):
        return data_update_notification(action, event)
    if isinstance(event, CircuitAlertEvent):
        raise TypeError("circuit alerts go to operators (alert), not to NOTIFY_URL")
    return job_notification(kind, action, event)


def job_notification(kind: str, action: str, event: HandlerEvent) -> dict[str, Any]:
    job = event.job
    previous = event.previous
    return {
        "type": f"job.{kind}",
        "timestamp": format_utc(event.received_at),
        "data": {
            "action": action,
            "job_guid": job.guid,
            "member_guid": job.member_guid,
            "user_guid": job.user_guid,
            "institution_guid": job.institution_guid,
            "status": job.status,
            "status_name": job.status_name,
            "is_authenticated": job.is_authenticated,
            "error_message": job.error_message,
            "updated_at": format_utc(job.updated_at) if job.updated_at else None,
            "previous_status": previous.status if previous else None,
            "previous_status_name": previous.status_name if previous else None,
            "event_id": event.event_id,
        },
    }


def member_notification(kind: str, action: str, event: MemberHandlerEvent) -> dict[str, Any]:
    """The member counterpart of the job notification: same envelope, type member.<handler>."""
    member = event.member
    previous = event.previous
    return {
        "type": f"member.{kind}",
        "timestamp": format_utc(event.received_at),
        "data": {
            "action": action,
            "member_guid": member.member_guid,
            "user_guid": member.user_guid,
            "institution_guid": event.institution_guid,
            "connection_status_id": member.connection_status_id,
            "connection_status": member.connection_status,
            "connection_status_message": member.connection_status_message,
            "event_at": format_utc(event.event_at),
            "previous_connection_status_id": previous.connection_status_id if previous else None,
            "previous_connection_status": previous.connection_status if previous else None,
            "source": event.source,
            "member_event_id": event.event_id,
        },
    }


DATA_UPDATED_TYPE = "member.data_updated"


def data_update_notification(action: str, event: DataUpdateHandlerEvent) -> dict[str, Any]:
    """Which data of which member to fetch from MX's API, whichever handler sends it."""
    return {
        "type": DATA_UPDATED_TYPE,
        "timestamp": format_utc(event.received_at),
        "data": {
            "action": action,
            "member_guid": event.member_guid,
            "user_guid": event.user_guid,
            "institution_guid": event.institution_guid,
            "data_type": event.data_type,
            "completed_at": format_utc(event.completed_at) if event.completed_at else None,
            "completed_on": event.completed_on,
            "counts": event.counts,
            "accounts": event.accounts,
            "data_update_id": event.data_update_id,
        },
    }


def notifying_handler(kind: str, action: str, delivery: Delivery) -> Handler:
    def handle(event: AnyHandlerEvent) -> None:
        delivery.send(event.idempotency_key, notification(kind, action, event))

    handle.__name__ = kind
    return handle
