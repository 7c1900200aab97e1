"""Keyset pages: a list is read newest first after the position of the last row served, never
by OFFSET, so a page costs the same however deep it is and rows arriving meanwhile are neither
skipped nor repeated. api/cursors.py turns a position into an opaque, signed cursor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

Row = TypeVar("Row")


@dataclass(frozen=True)
class Position:
    """A row's place in a newest-first keyset order: (at, key), both descending."""

    at: datetime | None
    key: str | int


def page_of(
    rows: Sequence[Row], limit: int, position_of: Callable[[Row], Position]
) -> tuple[list[Row], Position | None]:
    """Callers fetch limit + 1 rows: the extra one only proves that another page exists."""
    page = list(rows[:limit])
    more = len(rows) > limit
    return page, position_of(page[-1]) if more and page else None
