"""HALTED: a failure inside MX that no user can fix; post a Slack-compatible alert for operators."""

from __future__ import annotations

from typing import Any

from service.handlers.deliveries import Delivery
from service.handlers.event import Handler, HandlerEvent

NAME = "alert"


def alert_text(event: HandlerEvent) -> str:
    job = event.job
    status = job.status_name or str(job.status)
    return (
        f"MX job {job.guid} {status}: {job.error_message or 'no error message'} "
        f"(member {job.member_guid or 'unknown'}, institution {job.institution_guid or 'unknown'})"
    )


def alert_document(event: HandlerEvent) -> dict[str, Any]:
    return {"text": alert_text(event)}


def build(notify: Delivery, alert: Delivery) -> Handler:
    def handle(event: HandlerEvent) -> None:
        alert.send(event.idempotency_key, alert_document(event))

    handle.__name__ = NAME
    return handle
