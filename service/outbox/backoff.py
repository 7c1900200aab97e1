"""When a failed run is tried again: exponential backoff with full jitter, for as long as the
retry horizon lasts (and, if configured, for at most so many attempts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Caps one wait, so a receiver that comes back is tried again within the hour.
MAX_DELAY_SECONDS = 3600.0
DEFAULT_HORIZON_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_attempts: int | None = None
    max_delay_seconds: float = MAX_DELAY_SECONDS
    # A run older than this (since it was queued) is dead: MX itself retries for about a day.
    horizon_seconds: float = DEFAULT_HORIZON_SECONDS

    def ceiling(self, attempts: int) -> float:
        """The longest wait after `attempts` failures: base, 2*base, 4*base, ..."""
        exponent = min(max(attempts - 1, 0), 64)  # past this the cap has long been reached
        return min(self.max_delay_seconds, self.base_seconds * 2.0**exponent)

    def delay(
        self, attempts: int, random: Callable[[], float], age_seconds: float = 0.0
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the run should go dead.

        Full jitter (a uniform draw below the ceiling) spreads the retries of many runs that
        failed together, so a recovering receiver is not hit by all of them at once. The last
        attempt is made at the horizon, not skipped because a draw would land past it.
        """
        if self.exhausted(attempts, age_seconds):
            return None
        wait = float(random()) * self.ceiling(attempts)
        return min(wait, self.horizon_seconds - age_seconds)

    def exhausted(self, attempts: int, age_seconds: float) -> bool:
        out_of_attempts = self.max_attempts is not None and attempts >= self.max_attempts
        return out_of_attempts or age_seconds >= self.horizon_seconds
