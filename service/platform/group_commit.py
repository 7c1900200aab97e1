"""Group commit: the requests waiting to write at one moment share one transaction and one fsync.

Each request hands its work to `submit` and blocks until that work is committed, so no answer goes
out before its rows are durable. There is no writer thread: the first request to arrive while
nothing is being written leads, commits everything queued by then (itself included), wakes the
others with their own outcomes, and passes the lead to the oldest request still queued. Alone, a
request commits its own work at once, as if there were no grouping; under load, one commit serves
everyone who arrived while the previous one ran.
"""

from __future__ import annotations

import threading
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


class GroupCommit(Generic[Item, Result]):
    def __init__(self, commit_batch: CommitBatch[Item, Result], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit_batch = commit_batch
        self._max_batch = max_batch
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

    def _lead(self) -> None:
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            outcomes = self._commit_batch([ticket.item for ticket in batch])
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

    def _pass_the_lead(self) -> None:
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.leads = True
                successor.wake()
            else:
                self._leading = False
