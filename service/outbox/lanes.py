"""Lanes: each handler's runs are claimed on their own, so a slow or failing receiver delays only
its own handler. In one worker process a handler holds at most its share of the claim loops, and
the loops take the handlers with due runs in turn."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lane:
    """Runs of one handler, or (handler None) of every handler no lane names: those no handler
    is registered for, which fail and retry like any other."""

    handler: str | None
    probe: bool = False


@dataclass
class LaneBook:
    """One worker process's claim loops, counted per handler they are working for."""

    handlers: Sequence[str]
    loops: int
    # Per handler, loops of this process it may hold; the rest: half of them, at least one.
    shares: Mapping[str, int] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _turn: Iterator[int] = field(default_factory=itertools.count, init=False)

    def share(self, handler: str | None) -> int:
        default = max(1, self.loops // 2)
        return self.shares.get(handler, default) if handler is not None else default

    def order(self, blocked: frozenset[str], probing: frozenset[str]) -> list[Lane]:
        """The lanes a loop may try now, starting one further along each time (fairness)."""
        open_lanes = [name for name in self.handlers if name not in blocked]
        start = next(self._turn) % len(open_lanes) if open_lanes else 0
        rotated = open_lanes[start:] + open_lanes[:start]
        return [Lane(name, probe=name in probing) for name in rotated] + [Lane(None)]

    @contextmanager
    def hold(self, lane: Lane) -> Iterator[bool]:
        """Whether this loop may work in the lane; held until the block ends."""
        key = lane.handler or ""
        with self._lock:
            room = self._held.get(key, 0) < self.share(lane.handler)
            if room:
                self._held[key] = self._held.get(key, 0) + 1
        try:
            yield room
        finally:
            if room:
                with self._lock:
                    self._held[key] -= 1
