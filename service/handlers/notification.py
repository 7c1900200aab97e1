"""The signed JSON notification the NOTIFY_URL handlers share; each handler adds its action."""

from __future__ import annotations

from typing import Any

from service.handlers.deliveries import Delivery
from service.handlers.event import Handler, HandlerEvent
from service.schemas import format_utc


def notification(kind: str, action: str, event: HandlerEvent) -> dict[str, Any]:
    """Standard Webhooks payload shape, built from stored data only: every attempt is identical."""
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


def notifying_handler(kind: str, action: str, delivery: Delivery) -> Handler:
    def handle(event: HandlerEvent) -> None:
        delivery.send(event.idempotency_key, notification(kind, action, event))

    handle.__name__ = kind
    return handle
