"""What ingest answers for one delivery, whichever webhook it came through."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # became the job's current state
    STALE = "stale"  # stored in history; a newer event is already current
    DUPLICATE = "duplicate"  # already stored; nothing written


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    event_id: int | None = None
    handler_run_ids: list[int] = field(default_factory=list)
