"""Idle claim loops wake one at a time, and never wait longer than the poll interval."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from service.outbox.wakeups import WakeUps
from service.platform.db import make_engine

POLL_SECONDS = 5.0
WAIT_SECONDS = 10


def waiting_loops(wakeups: WakeUps, count: int) -> tuple[list[threading.Thread], list[int]]:
    woken: list[int] = []

    def loop(index: int) -> None:
        wakeups.wait(POLL_SECONDS)
        woken.append(index)

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # let every loop reach wait(); a nudge before that is kept for it anyway
    return threads, woken


def test_a_nudge_wakes_one_idle_loop_not_all() -> None:
    wakeups = WakeUps(None, threading.Event(), loops=3)
    threads, woken = waiting_loops(wakeups, 3)
    wakeups.nudge()
    time.sleep(1.0)  # far less than the poll interval: only a nudge can have woken a loop
    assert len(woken) == 1
    assert sum(thread.is_alive() for thread in threads) == 2
    wakeups.nudge(2)
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert sorted(woken) == [0, 1, 2]


def test_a_nudge_with_no_loop_waiting_is_kept_for_the_next_one() -> None:
    wakeups = WakeUps(None, threading.Event(), loops=2)
    wakeups.nudge()
    started = time.monotonic()
    wakeups.wait(POLL_SECONDS)
    assert time.monotonic() - started < 1


def test_kept_wake_ups_are_capped_at_one_per_loop() -> None:
    wakeups = WakeUps(None, threading.Event(), loops=2)
    wakeups.nudge(10)
    wakeups.wait(POLL_SECONDS)
    wakeups.wait(POLL_SECONDS)
    started = time.monotonic()
    wakeups.wait(0.3)  # nothing kept any more: this one polls
    assert time.monotonic() - started >= 0.25


def test_a_worker_engine_skips_the_wait_for_the_commit_flush_and_ingest_does_not(
    postgres_url: str,
) -> None:
    relaxed, strict = make_engine(postgres_url, relaxed_commits=True), make_engine(postgres_url)
    try:
        with relaxed.connect() as connection:
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
        with strict.connect() as connection:
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
    finally:
        relaxed.dispose()
        strict.dispose()
