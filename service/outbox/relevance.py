"""Whether a claimed run still matters, decided in the claim's transaction before delivery.

A prompt for an MFA challenge that is over, or a request to fix credentials for a member that has
since reconnected, would ask the user for nothing: such runs end `superseded`. A run older than
its handler's maximum age ends `expired`. Neither is delivered, and neither is a failure. The
rules are data: which handlers follow which rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from service.jobs.models import Job
from service.jobs.statuses import STATUS_CODES_BY_NAME
from service.members.models import Member
from service.outbox.models import HandlerRun, RunState

CONNECTED = "CONNECTED"
COMPLETED = STATUS_CODES_BY_NAME["COMPLETED"]

# True when the run's event has been overtaken: the run no longer asks for anything real.
Superseded = Callable[[Session, HandlerRun], bool]


def challenge_is_over(session: Session, run: HandlerRun) -> bool:
    """An MFA prompt matters while its event is still the job's (or member's) current state: a
    later COMPLETED, DENIED or newer CHALLENGED means the challenge it was for is gone."""
    if run.event_id is not None:
        current = session.scalar(select(Job.current_event_id).where(Job.guid == run.job_guid))
        return current is not None and current != run.event_id
    if run.member_event_id is not None:
        current = session.scalar(
            select(Member.current_event_id).where(Member.guid == run.member_guid)
        )
        return current is not None and current != run.member_event_id
    return False


def member_reconnected(session: Session, run: HandlerRun) -> bool:
    """Asking the user to fix credentials matters until the member works again: it is CONNECTED
    now, or one of its jobs COMPLETED, after the run was queued."""
    if run.member_guid is None:
        return False
    connected = exists().where(
        Member.guid == run.member_guid,
        func.upper(Member.connection_status) == CONNECTED,
        Member.received_at > run.created_at,
    )
    completed = exists().where(
        Job.member_guid == run.member_guid,
        Job.status == COMPLETED,
        Job.received_at > run.created_at,
    )
    return bool(session.scalar(select(connected | completed)))


SUPERSEDED_BY: Mapping[str, Superseded] = {
    "mfa_prompt": challenge_is_over,
    "user_action_required": member_reconnected,
}


@dataclass(frozen=True)
class Relevance:
    superseded_by: Mapping[str, Superseded]
    max_age: Mapping[str, timedelta]

    def verdict(self, session: Session, run: HandlerRun, now: datetime) -> RunState | None:
        """None when the run should be delivered; else the state it ends in."""
        max_age = self.max_age.get(run.handler)
        if max_age is not None and now - run.created_at > max_age:
            return RunState.EXPIRED
        superseded = self.superseded_by.get(run.handler)
        if superseded is not None and superseded(session, run):
            return RunState.SUPERSEDED
        return None


def relevance(max_age_seconds: Sequence[tuple[str, float]]) -> Relevance:
    return Relevance(
        SUPERSEDED_BY,
        {name: timedelta(seconds=seconds) for name, seconds in max_age_seconds},
    )
