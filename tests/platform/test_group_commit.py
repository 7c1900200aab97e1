"""Group commit: concurrent deliveries share a commit, and each still gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.platform.group_commit import GroupCommit

WAIT_SECONDS = 10


class GatedBatches:
    """A batch function whose first batch waits at a gate, so later submissions queue behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.first_batch_started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_batch_started.set()
            assert self.gate.wait(WAIT_SECONDS)
        return [ValueError(f"refused {item}") if item < 0 else item * 10 for item in items]


def submit_behind_first(
    batches: GatedBatches, commits: GroupCommit[int, int], later: list[int]
) -> tuple[object, list[object]]:
    """Submit 1, then `later` while 1's batch is held; return each submission's outcome."""

    def outcome(item: int) -> object:
        try:
            return commits.submit(item)
        except ValueError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=len(later) + 1) as pool:
        first = pool.submit(outcome, 1)
        assert batches.first_batch_started.wait(WAIT_SECONDS)
        futures = [pool.submit(outcome, item) for item in later]
        while commits.waiting < len(later):
            threading.Event().wait(0.001)
        batches.gate.set()
        return first.result(WAIT_SECONDS), [future.result(WAIT_SECONDS) for future in futures]


def test_a_lone_submission_is_committed_at_once_in_its_own_batch() -> None:
    batches = GatedBatches()
    batches.gate.set()
    commits = GroupCommit(batches, max_batch=8)
    assert commits.submit(4) == 40
    assert batches.batches == [[4]]


def test_submissions_arriving_during_a_commit_share_the_next_one() -> None:
    batches = GatedBatches()
    commits = GroupCommit(batches, max_batch=64)
    first, later = submit_behind_first(batches, commits, [2, 3, 4, 5, 6])
    assert first == 10
    assert later == [20, 30, 40, 50, 60]
    assert batches.batches[0] == [1]
    assert sorted(batches.batches[1]) == [2, 3, 4, 5, 6]
    assert len(batches.batches) == 2


def test_a_batch_never_exceeds_its_limit() -> None:
    batches = GatedBatches()
    commits = GroupCommit(batches, max_batch=2)
    _, later = submit_behind_first(batches, commits, [2, 3, 4, 5, 6])
    assert later == [20, 30, 40, 50, 60]
    assert all(len(batch) <= 2 for batch in batches.batches)
    assert sorted(item for batch in batches.batches for item in batch) == [1, 2, 3, 4, 5, 6]


def test_an_error_for_one_item_is_raised_to_that_submitter_only() -> None:
    batches = GatedBatches()
    commits = GroupCommit(batches, max_batch=64)
    _, later = submit_behind_first(batches, commits, [2, -3, 4])
    assert later == [20, "refused -3", 40]


def test_a_failing_batch_fails_its_members_and_the_next_submission_still_commits() -> None:
    calls: list[list[int]] = []

    def broken_once(items: Sequence[int]) -> list[int | Exception]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return [item for item in items]

    commits = GroupCommit(broken_once, max_batch=8)
    with pytest.raises(RuntimeError, match="went away"):
        commits.submit(1)
    assert commits.submit(2) == 2


def test_many_threads_each_get_their_own_result() -> None:
    def double(items: Sequence[int]) -> list[int | Exception]:
        return [item * 2 for item in items]

    commits = GroupCommit(double, max_batch=16)
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(commits.submit, range(2000)))
    assert results == [item * 2 for item in range(2000)]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(lambda items: list(items), max_batch=0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_is_also_bounded_by_time() -> None:
    """Items that took one second each, with four seconds allowed: batches of four."""
    clock = Clock()
    batches = GatedBatches()

    def one_second_each(items: Sequence[int]) -> list[int | Exception]:
        clock.now += len(items)
        return batches(items)

    commits = GroupCommit(one_second_each, max_batch=8, max_batch_seconds=4.0, clock=clock)
    assert commits.batch_limit == 8  # nothing measured yet
    submit_behind_first(batches, commits, list(range(2, 12)))

    assert commits.batch_limit == 4
    assert [len(batch) for batch in batches.batches] == [1, 4, 4, 2]
