"""Group commit: the requests waiting to write at one moment share one transaction and one fsync.

Each request hands its work to `submit` and blocks until that work is committed, so no answer goes
out before its rows are durable. There is no writer thread: the first request to arrive while
nothing is being written leads, commits everything queued by then (itself included), wakes the
others with their own outcomes, and passes the lead to the oldest request still queued. Alone, a
request commits its own work at once, as if there were no grouping; under load, one commit serves
everyone who arrived while the previous one ran.

A batch is bounded by count and by time: from the seconds per item that recent batches took, the
leader takes no more than fit in `max_batch_seconds`, so one long batch cannot hold everyone
queued behind it (a request waits for at most the batch in progress and its own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# What a batch returns for each item, in order: its result, or the exception to raise for it.
CommitBatch = Callable[[Sequence[Item]], Sequence[Result | Exception]]


class _Ticket(Generic[Item, Result]):
    __slots__ = ("item", "outcome", "leads", "_asleep")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.outcome: Result | BaseException | None = None
        self.leads = False
        # Held from the start, so acquiring it again sleeps until `wake` releases it: one C-level
        # lock per request, where an Event would add a Condition and its Python bookkeeping.
        self._asleep = threading.Lock()
        self._asleep.acquire()

    def sleep(self) -> None:
        self._asleep.acquire()

    def wake(self) -> None:
        self._asleep.release()


# How much each new batch moves the estimate of seconds per item.
_ESTIMATE_WEIGHT = 0.2


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        commit_batch: CommitBatch[Item, Result],
        max_batch: int,
        max_batch_seconds: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._max_batch_seconds = max_batch_seconds
        self._clock = clock
        self._seconds_per_item = 0.0  # unknown until a batch has run
        self._lock = threading.Lock()
        self._queue: list[_Ticket[Item, Result]] = []
        # True while a leader is committing; the queue is only ever non-empty while it is.
        self._leading = False

    @property
    def waiting(self) -> int:
        """Submissions queued for the next commit (not counting the one being committed)."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: Item) -> Result:
        """Commit `item` with whatever else is queued; return its result or raise its error."""
        ticket: _Ticket[Item, Result] = _Ticket(item)
        with self._lock:
            self._queue.append(ticket)
            ticket.leads = not self._leading
            self._leading = True
        if not ticket.leads:
            ticket.sleep()
        if ticket.leads:
            self._lead()
        if isinstance(ticket.outcome, BaseException):
            raise ticket.outcome
        return ticket.outcome  # type: ignore[return-value]

    @property
    def batch_limit(self) -> int:
        """How many items the next batch may take: the count bound, or fewer by the time bound."""
        if not self._max_batch_seconds or not self._seconds_per_item:
            return self._max_batch
        fitting = int(self._max_batch_seconds / self._seconds_per_item)
        return max(1, min(self._max_batch, fitting))

    def _lead(self) -> None:
        limit = self.batch_limit
        with self._lock:
            batch = self._queue[:limit]
            del self._queue[:limit]
        try:
            started = self._clock()
            outcomes = self._commit_batch([ticket.item for ticket in batch])
            self._learn(self._clock() - started, len(batch))
            if len(outcomes) != len(batch):
                raise RuntimeError("a batch commit returned the wrong number of outcomes")
            for ticket, outcome in zip(batch, outcomes, strict=True):
                ticket.outcome = outcome
        except BaseException as error:
            for ticket in batch:
                ticket.outcome = error
            raise
        finally:
            # Even when this thread is being torn down, the others must not wait forever.
            self._pass_the_lead()
            for ticket in batch:
                if not ticket.leads:
                    ticket.wake()

    def _learn(self, seconds: float, items: int) -> None:
        # Only the leader writes it, and there is one leader at a time.
        per_item = seconds / items
        if self._seconds_per_item:
            per_item += (1 - _ESTIMATE_WEIGHT) * (self._seconds_per_item - per_item)
        self._seconds_per_item = per_item

    def _pass_the_lead(self) -> None:
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.leads = True
                successor.wake()
            else:
                self._leading = False
