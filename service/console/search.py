"""The one search box: a job, member or user guid, whole or a prefix, to the page it names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from service.jobs.queries import job_guids_with_prefix, list_jobs, user_guids_with_prefix
from service.jobs.schemas import JobFilters
from service.members.queries import member_guids_with_prefix
from service.platform.models import GUID_LENGTH

MATCHES_PER_KIND = 10


class Kind(StrEnum):
    JOB = "job"
    MEMBER = "member"
    USER = "user"


@dataclass(frozen=True)
class Match:
    kind: Kind
    guid: str
    exact: bool


def find(session: Session, text: str) -> list[Match]:
    """Exact matches first, then up to MATCHES_PER_KIND prefix matches of each kind."""
    wanted = text.strip()[:GUID_LENGTH]
    if not wanted:
        return []
    found = {
        Kind.JOB: job_guids_with_prefix(session, wanted, MATCHES_PER_KIND),
        Kind.MEMBER: _members(session, wanted),
        Kind.USER: user_guids_with_prefix(session, wanted, MATCHES_PER_KIND),
    }
    matches = [Match(kind, guid, guid == wanted) for kind, guids in found.items() for guid in guids]
    return sorted(matches, key=lambda match: not match.exact)


def the_one(matches: list[Match]) -> Match | None:
    """Where to go straight away: the only exact match, or else the only match."""
    exact = [match for match in matches if match.exact]
    if len(exact) == 1:
        return exact[0]
    return matches[0] if len(matches) == 1 else None


def _members(session: Session, wanted: str) -> list[str]:
    """A member MX named only in job callbacks has no member row, but has a page all the same."""
    guids = member_guids_with_prefix(session, wanted, MATCHES_PER_KIND)
    if wanted not in guids:
        jobs, _ = list_jobs(session, JobFilters(member_guid=wanted), None, 1)
        if jobs:
            guids.insert(0, wanted)
    return guids
