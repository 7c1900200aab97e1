"""Failed-authentication limiting per client address, shared by every process through the database.

Each failure increments a per-address counter for the current fixed window with one upsert, so N
web processes on M machines see one global count. Every process reads the addresses over the limit
at most once a second (one small query, whatever the traffic) and refuses them before looking at
their credentials until the window ends, so guessing stops on every process even when a guess
would have been right.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.platform.db import insert_for
from service.webhooks.models import AuthFailure

MAX_REMEMBERED_BLOCKS = 10_000
# How stale a process's view of blocks another process made may get.
REFRESH_SECONDS = 1.0


class FailedAuthLimiter:
    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window_seconds)
        self._blocked_until: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._refreshed_at = -REFRESH_SECONDS

    def claim_refresh(self) -> bool:
        """True for the one caller that should refresh now: the others go on with the blocks
        already known, rather than every thread of the process running the same query at once."""
        with self._lock:
            now = time.monotonic()
            if now - self._refreshed_at < REFRESH_SECONDS:
                return False
            self._refreshed_at = now
            return True

    def refresh(self, session: Session, now: datetime) -> None:
        """Learn the blocks every process made in the current window."""
        start = self.window_start(now)
        over = session.scalars(
            select(AuthFailure.client_address)
            .where(AuthFailure.window_start == start, AuthFailure.failures > self.limit)
            .limit(MAX_REMEMBERED_BLOCKS)
        ).all()
        with self._lock:
            for address in over:
                self._blocked_until[address] = start + self.window

    def window_start(self, now: datetime) -> datetime:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        windows = (now - epoch) // self.window
        return epoch + windows * self.window

    def blocked_for(self, address: str, now: datetime) -> int:
        """Seconds this address must wait, or 0 when it may try."""
        with self._lock:
            until = self._blocked_until.get(address)
            if until is None:
                return 0
            if until <= now:
                del self._blocked_until[address]
                return 0
            return max(1, int((until - now).total_seconds()))

    def record_failure(self, session: Session, address: str, now: datetime) -> bool:
        """Count one failure; True when the address is now over the limit (and blocked here)."""
        start = self.window_start(now)
        insert = insert_for(session, AuthFailure)
        statement = (
            insert.values(client_address=address, window_start=start, failures=1)
            .on_conflict_do_update(
                index_elements=[AuthFailure.client_address, AuthFailure.window_start],
                set_={"failures": AuthFailure.failures + 1},
            )
            .returning(AuthFailure.failures)
        )
        failures = session.execute(statement).scalar_one()
        if failures <= self.limit:
            return False
        with self._lock:
            if len(self._blocked_until) >= MAX_REMEMBERED_BLOCKS:
                self._forget_expired(now)
            self._blocked_until[address] = start + self.window
        return True

    def _forget_expired(self, now: datetime) -> None:
        expired = [address for address, until in self._blocked_until.items() if until <= now]
        for address in expired:
            del self._blocked_until[address]


def purge_auth_failures(session: Session, before: datetime) -> int:
    result = session.execute(delete(AuthFailure).where(AuthFailure.window_start < before))
    return int(getattr(result, "rowcount", 0) or 0)
