"""Where to look after a quarantined body was replayed: the job or member it became."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.jobs.models import JobEvent
from service.members.models import MemberDataUpdate, MemberEvent
from service.platform.outcomes import IngestResult
from service.webhooks.kinds import ANY_KIND_ENDPOINT, WebhookKind, webhook_kind
from service.webhooks.payload import parse_json


def replayed_kind(endpoint: str, body: bytes) -> WebhookKind:
    """As replay decided it: the endpoint's own kind, or the body's for POST /webhooks/mx.
    Only called after a replay succeeded, so the body parses and has a kind."""
    return (
        webhook_kind(parse_json(body)) if endpoint == ANY_KIND_ENDPOINT else WebhookKind(endpoint)
    )


def replayed_owner(
    session: Session, kind: WebhookKind, result: IngestResult
) -> tuple[str, str] | None:
    """("job" or "member", guid) of the stored event; None for a duplicate, which stored none."""
    if result.event_id is None:
        return None
    if kind is WebhookKind.JOBS:
        job_event = session.get(JobEvent, result.event_id)
        return ("job", job_event.job_guid) if job_event else None
    if kind is WebhookKind.DATA_UPDATES:
        update = session.get(MemberDataUpdate, result.event_id)
        return ("member", update.member_guid) if update else None
    member_event = session.get(MemberEvent, result.event_id)
    return ("member", member_event.member_guid) if member_event else None
