"""HALTED, or many members of one institution in outage at once: a failure no user can fix;
post a Slack-compatible alert for operators."""

from __future__ import annotations

from typing import Any

from service.handlers.deliveries import Delivery
from service.handlers.event import (
    AnyHandlerEvent,
    CircuitAlertEvent,
    DataUpdateHandlerEvent,
    Handler,
    MemberHandlerEvent,
)

NAME = "alert"


def alert_text(event: AnyHandlerEvent) -> str:
    if isinstance(event, MemberHandlerEvent):
        return member_alert_text(event)
    if isinstance(event, DataUpdateHandlerEvent):
        return f"MX member {event.member_guid} has new {event.data_type} data"
    if isinstance(event, CircuitAlertEvent):
        return (
            f"jobhooks handler {event.failing_handler} stopped delivering after "
            f"{event.failures} failures in a row (last: {event.last_error}); its runs wait, "
            f"next try in {_duration(int(event.cooldown_seconds))}"
        )
    job = event.job
    status = job.status_name or str(job.status)
    return (
        f"MX job {job.guid} {status}: {job.error_message or 'no error message'} "
        f"(member {job.member_guid or 'unknown'}, institution {job.institution_guid or 'unknown'})"
    )


def member_alert_text(event: MemberHandlerEvent) -> str:
    member = event.member
    status = member.connection_status or str(member.connection_status_id)
    if event.outage is not None:
        outage = event.outage
        return (
            f"MX institution {outage.institution_guid} may be down: {outage.member_count} members "
            f"IMPAIRED or DEGRADED in the last {_duration(outage.window_seconds)} "
            f"(latest: member {member.member_guid} {status})"
        )
    return (
        f"MX member {member.member_guid} {status}: "
        f"{member.connection_status_message or 'no message'} "
        f"(institution {event.institution_guid or 'unknown'})"
    )


def _duration(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"


def slack_escaped(text: str) -> str:
    """Slack reads <...> as mentions (<!channel>) and links (<url|label>): its docs ask for &, <
    and > to be escaped, so text from MX (guids, error messages) stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_document(event: AnyHandlerEvent) -> dict[str, Any]:
    return {"text": slack_escaped(alert_text(event))}


def build(notify: Delivery, alert: Delivery) -> Handler:
    def handle(event: AnyHandlerEvent) -> None:
        alert.send(event.idempotency_key, alert_document(event))

    handle.__name__ = NAME
    return handle
