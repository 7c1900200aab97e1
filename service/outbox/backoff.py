"""When a failed run is tried again: exponential backoff with full jitter; bounded attempts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Caps one wait so a high HANDLER_MAX_ATTEMPTS cannot push a retry days away.
MAX_DELAY_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_attempts: int
    max_delay_seconds: float = MAX_DELAY_SECONDS

    def ceiling(self, attempts: int) -> float:
        """The longest wait after `attempts` failures: base, 2*base, 4*base, ..."""
        return min(self.max_delay_seconds, self.base_seconds * 2.0 ** max(attempts - 1, 0))

    def delay(self, attempts: int, random: Callable[[], float]) -> float | None:
        """Seconds to wait before the next attempt, or None when the run should go dead.

        Full jitter (a uniform draw below the ceiling) spreads the retries of many runs that
        failed together, so a recovering receiver is not hit by all of them at once.
        """
        if attempts >= self.max_attempts:
            return None
        return float(random()) * self.ceiling(attempts)
