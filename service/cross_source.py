"""Where job callbacks and connection-status events meet: the member's institution (which the
CONNECTION_STATUS body does not name), one user prompt per window across both sources, and the
institution-outage signal that only the two together can see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.connection_statuses import OUTAGE_SIGNAL_CODES
from service.db import insert_for
from service.models import InstitutionAlert, Member, MemberPrompt
from service.statuses import STATUS_CODES_BY_NAME

# What the institution-outage rule queues; it reports to operators (ALERT_URL), not users.
OUTAGE_HANDLER = "alert"
# Handlers that ask the end user to do something; a user asked once is not asked again in a window.
PROMPT_HANDLERS = frozenset({"mfa_prompt"})
# Job statuses that end an MFA challenge: a CHALLENGED after one of these is a new challenge.
CHALLENGE_ENDING_JOB_STATUSES = frozenset(
    STATUS_CODES_BY_NAME[name] for name in ("COMPLETED", "PREVENTED", "DENIED", "HALTED")
)


@dataclass(frozen=True)
class CrossSourceRules:
    prompt_window: timedelta = timedelta(seconds=600)
    outage_window: timedelta = timedelta(seconds=900)
    outage_threshold: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> CrossSourceRules:
        return cls(
            prompt_window=timedelta(seconds=settings.prompt_dedup_window_seconds),
            outage_window=timedelta(seconds=settings.outage_window_seconds),
            outage_threshold=settings.outage_member_threshold,
        )


def learn_institution(session: Session, member_guid: str, institution_guid: str) -> None:
    """A member belongs to one institution for life, so the first one named is kept."""
    session.execute(
        update(Member)
        .where(Member.guid == member_guid, Member.institution_guid.is_(None))
        .values(institution_guid=institution_guid)
    )


class PromptSource(StrEnum):
    JOB = "job"
    CONNECTION_STATUS = "connection-status"


def unprompted(
    session: Session,
    member_guid: str,
    handlers: Sequence[str],
    source: PromptSource,
    now: datetime,
    window: timedelta,
) -> list[str]:
    """The handlers to queue: a prompt the other source made within the window is left out."""
    return [
        handler
        for handler in handlers
        if handler not in PROMPT_HANDLERS
        or claim_prompt(session, member_guid, handler, source, now, window)
    ]


def claim_prompt(
    session: Session,
    member_guid: str,
    handler: str,
    source: PromptSource,
    now: datetime,
    window: timedelta,
) -> bool:
    """Record a prompt unless the other source recorded one within the window.

    Only the other source holds a prompt back: each source's own repeats are dropped at ingest,
    so a second job CHALLENGED (a new job, a second MFA step) is a new challenge, as before
    connection statuses existed. One conditional upsert, not a read-then-write: of a job
    CHALLENGED and a connection-status CHALLENGED committing at once, exactly one gets the row
    back and prompts.
    """
    insert = insert_for(session, MemberPrompt)
    statement = (
        insert.values(
            member_guid=member_guid, handler=handler, source=source.value, last_prompted_at=now
        )
        .on_conflict_do_update(
            index_elements=[MemberPrompt.member_guid, MemberPrompt.handler],
            set_={
                "source": insert.excluded.source,
                "last_prompted_at": insert.excluded.last_prompted_at,
            },
            where=or_(
                MemberPrompt.source == insert.excluded.source,
                MemberPrompt.last_prompted_at <= now - window,
            ),
        )
        .returning(MemberPrompt.member_guid)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def end_prompts(session: Session, member_guid: str) -> None:
    """The member moved past the state it was prompted for; a new challenge prompts again."""
    session.execute(
        delete(MemberPrompt).where(
            MemberPrompt.member_guid == member_guid, MemberPrompt.handler.in_(PROMPT_HANDLERS)
        )
    )


def members_in_outage(session: Session, institution_guid: str, since: datetime) -> int:
    """Members of the institution whose current status is an outage signal reached since then."""
    statement = select(func.count()).where(
        Member.institution_guid == institution_guid,
        Member.connection_status_id.in_(OUTAGE_SIGNAL_CODES),
        Member.event_at >= since,
    )
    return int(session.execute(statement).scalar_one())


def claim_institution_alert(
    session: Session, institution_guid: str, member_count: int, now: datetime, window: timedelta
) -> bool:
    """At most one alert per institution per window, decided by one conditional upsert."""
    insert = insert_for(session, InstitutionAlert)
    statement = (
        insert.values(
            institution_guid=institution_guid, last_alerted_at=now, member_count=member_count
        )
        .on_conflict_do_update(
            index_elements=[InstitutionAlert.institution_guid],
            set_={
                "last_alerted_at": insert.excluded.last_alerted_at,
                "member_count": insert.excluded.member_count,
            },
            where=InstitutionAlert.last_alerted_at <= now - window,
        )
        .returning(InstitutionAlert.institution_guid)
    )
    return session.execute(statement).scalar_one_or_none() is not None
