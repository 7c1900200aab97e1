"""How a worker process's idle claim loops learn that runs are due: one at a time.

PostgreSQL: one LISTEN connection per process; each notification wakes one idle loop, not all
of them. Woken together, every loop would query and try to claim the same new run, and under a
steady stream of commits that herd costs more than the runs themselves. A loop that claims a
full batch wakes the next one, so a burst still gets every loop. SQLite (or a lost LISTEN
connection): the loops poll.
"""

from __future__ import annotations

import logging
import threading

from service.platform.logs import log
from service.platform.notify import ChannelListener, ListenerLost

logger = logging.getLogger("jobhooks.worker")

# NOTIFYed when handler runs become due, so idle workers start them without waiting for a poll.
HANDLER_RUNS_CHANNEL = "jobhooks_handler_runs"
# How long the listening thread waits on the connection before checking for shutdown.
LISTEN_TIMEOUT_SECONDS = 1.0


class WakeUps:
    def __init__(self, listener: ChannelListener | None, stop: threading.Event, loops: int) -> None:
        self._listener = listener
        self._stop = stop
        self._condition = threading.Condition()
        # Wake-ups not yet taken by a loop; more than one per loop would only cause empty claims.
        self._pending = 0
        self._limit = loops
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        if self._listener is not None:
            self._thread = threading.Thread(target=self._listen, name="listen", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self.nudge(self._limit)  # let waiting loops see the stop at once
        if self._thread is not None:
            self._thread.join(LISTEN_TIMEOUT_SECONDS * 2)
        if self._listener is not None:
            self._listener.close()

    def nudge(self, loops: int = 1) -> None:
        """Wake up to `loops` idle loops (or the next ones to go idle)."""
        with self._condition:
            self._pending = min(self._pending + loops, self._limit)
            self._condition.notify(loops)

    def wait(self, poll_seconds: float) -> None:
        """Return on a wake-up, or after poll_seconds (the fallback that finds runs anyway)."""
        with self._condition:
            if not self._pending:
                self._condition.wait(poll_seconds)
            if self._pending:
                self._pending -= 1

    def _listen(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                notified = self._listener.wait(LISTEN_TIMEOUT_SECONDS)
            except ListenerLost as error:
                log(logger, "listen connection lost; polling", logging.WARNING, error=str(error))
                self._stop.wait(LISTEN_TIMEOUT_SECONDS)
                continue
            if notified:
                self.nudge()
