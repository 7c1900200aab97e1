"""Retention: drop raw payloads and quarantined bodies past an age, keep the compact history."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import null, or_, update
from sqlalchemy.orm import Session

from service.jobs.models import JobEvent
from service.members.models import MemberDataUpdate, MemberEvent
from service.webhooks.models import RejectedDelivery
from service.webhooks.ratelimit import purge_auth_failures

AGE_PATTERN = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """'90d', '12h' or '30m'."""
    match = AGE_PATTERN.match(text)
    if not match:
        raise ValueError(f"age must look like 90d, 12h or 30m, got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{AGE_UNITS[unit]: amount})


@dataclass(frozen=True)
class PurgeResult:
    payloads_removed: int
    quarantined_bodies_removed: int
    auth_failure_windows_removed: int


def purge(session: Session, cutoff: datetime) -> PurgeResult:
    """Raw bodies of job events, member events (with their X-CALLBACK-PAYLOAD) and data updates,
    and quarantined bodies, received before the cutoff."""
    payloads = sum(
        int(getattr(session.execute(statement), "rowcount", 0) or 0)
        for statement in (
            update(JobEvent)
            .where(JobEvent.received_at < cutoff, JobEvent.payload.is_not(None))
            .values(payload=null()),
            update(MemberEvent)
            .where(
                MemberEvent.received_at < cutoff,
                or_(MemberEvent.payload.is_not(None), MemberEvent.callback_payload.is_not(None)),
            )
            .values(payload=null(), callback_payload=None),
            update(MemberDataUpdate)
            .where(MemberDataUpdate.received_at < cutoff, MemberDataUpdate.payload.is_not(None))
            .values(payload=null()),
        )
    )
    bodies = session.execute(
        update(RejectedDelivery)
        .where(RejectedDelivery.received_at < cutoff, RejectedDelivery.body.is_not(None))
        .values(body=None)
    )
    return PurgeResult(
        payloads_removed=payloads,
        quarantined_bodies_removed=int(getattr(bodies, "rowcount", 0) or 0),
        auth_failure_windows_removed=purge_auth_failures(session, cutoff),
    )
