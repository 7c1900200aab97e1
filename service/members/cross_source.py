"""Where job callbacks and member webhooks (CONNECTION_STATUS, MEMBER) meet: the member's
institution (which the CONNECTION_STATUS body does not name), one user prompt per window across
every source, and the institution-outage signal that only their sum can see."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.jobs.statuses import STATUS_CODES_BY_NAME
from service.members.models import InstitutionAlert, Member, MemberPrompt
from service.members.statuses import OUTAGE_SIGNAL_NAMES
from service.platform.bulk import BulkWrite
from service.platform.db import insert_for, insert_for_dialect

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
    """The windows and threshold of the rules below, as configured (defaults in Settings)."""

    prompt_window: timedelta
    outage_window: timedelta
    outage_threshold: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CrossSourceRules:
        return cls(
            prompt_window=timedelta(seconds=settings.prompt_dedup_window_seconds),
            outage_window=timedelta(seconds=settings.outage_window_seconds),
            outage_threshold=settings.outage_member_threshold,
        )


DEFAULT_RULES = CrossSourceRules.from_settings(Settings())


def learn_institutions(session: Session, memberships: Iterable[tuple[str, str]]) -> None:
    """A member belongs to one institution for life, so the first one named is kept.

    `memberships` are (member_guid, institution_guid) pairs; one executemany for all of them.
    """
    _LEARN_INSTITUTION.run(
        session,
        [{"member": member, "institution": institution} for member, institution in memberships],
    )


# Built once with bound parameters: these run for most deliveries, and building a statement costs
# more Python time than the database needs to run it.
_LEARN_INSTITUTION = BulkWrite(
    lambda _dialect: (
        update(Member)
        .where(Member.guid == bindparam("member"), Member.institution_guid.is_(None))
        .values(institution_guid=bindparam("institution"))
    )
)
_END_PROMPTS = BulkWrite(
    lambda _dialect: delete(MemberPrompt).where(
        MemberPrompt.member_guid == bindparam("member"),
        # One bound value per handler, not an expanding IN, so the statement compiles once.
        MemberPrompt.handler.in_(
            [bindparam(f"prompt_{n}", name) for n, name in enumerate(sorted(PROMPT_HANDLERS))]
        ),
    )
)


class PromptSource(StrEnum):
    JOB = "job"
    CONNECTION_STATUS = "connection-status"
    MEMBER = "member"


@dataclass(frozen=True)
class PromptRequest:
    """One source wanting to prompt one member: handlers as wired, at `now`."""

    member_guid: str
    handlers: Sequence[str]
    now: datetime


def unprompted(
    session: Session,
    member_guid: str,
    handlers: Sequence[str],
    source: PromptSource,
    now: datetime,
    window: timedelta,
) -> list[str]:
    """The handlers to queue: a prompt the other source made within the window is left out."""
    return unprompted_many(session, [PromptRequest(member_guid, handlers, now)], source, window)[0]


def unprompted_many(
    session: Session,
    requests: Sequence[PromptRequest],
    source: PromptSource,
    window: timedelta,
) -> list[list[str]]:
    """unprompted for several requests in order, with one executemany for all their claims."""
    claims = [
        (position, handler)
        for position, request in enumerate(requests)
        for handler in request.handlers
        if handler in PROMPT_HANDLERS
    ]
    granted = _claim_prompts(
        session, [(requests[p], handler) for p, handler in claims], source, window
    )
    refused = {claim for claim, ok in zip(claims, granted, strict=True) if not ok}
    return [
        [handler for handler in request.handlers if (position, handler) not in refused]
        for position, request in enumerate(requests)
    ]


def _claim_prompts(
    session: Session,
    claims: Sequence[tuple[PromptRequest, str]],
    source: PromptSource,
    window: timedelta,
) -> list[bool]:
    """Record each prompt unless the other source recorded one within the window.

    Only another source holds a prompt back: each source's own repeats are dropped at ingest,
    so a second job CHALLENGED (a new job, a second MFA step) is a new challenge, as before
    connection statuses existed. One conditional upsert per claim, not a read-then-write: of a
    job CHALLENGED and a connection-status CHALLENGED committing at once, exactly one gets the
    row back and prompts.
    """
    rows = [
        {
            "member_guid": request.member_guid,
            "handler": handler,
            "source": source.value,
            "last_prompted_at": request.now,
            "window_start": request.now - window,
        }
        for request, handler in claims
    ]
    return [bool(returned) for returned in _CLAIM_PROMPT.run(session, rows)]


def _prompt_claim(dialect: str) -> Any:
    insert = insert_for_dialect(dialect, MemberPrompt.__table__)
    prompts = MemberPrompt.__table__.c
    columns = ("member_guid", "handler", "source", "last_prompted_at")
    return (
        insert.values({name: bindparam(name) for name in columns})
        .on_conflict_do_update(
            index_elements=[prompts.member_guid, prompts.handler],
            set_={
                "source": insert.excluded.source,
                "last_prompted_at": insert.excluded.last_prompted_at,
            },
            where=or_(
                prompts.source == insert.excluded.source,
                prompts.last_prompted_at <= bindparam("window_start"),
            ),
        )
        .returning(prompts.member_guid)
    )


_CLAIM_PROMPT = BulkWrite(_prompt_claim)


def end_prompts(session: Session, member_guids: Iterable[str]) -> None:
    """The members moved past the state they were prompted for; a new challenge prompts again."""
    _END_PROMPTS.run(session, [{"member": member} for member in member_guids])


def members_in_outage(session: Session, institution_guid: str, since: datetime) -> int:
    """Members of the institution whose current status is an outage signal reached since then.

    By name: where MX's id and name disagree, the name is what we trust (connection_statuses).
    """
    statement = select(func.count()).where(
        Member.institution_guid == institution_guid,
        # Names are stored as MX sent them; the table's lookup ignores case, and so does this.
        func.upper(Member.connection_status).in_(OUTAGE_SIGNAL_NAMES),
        Member.deleted_at.is_(None),
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
