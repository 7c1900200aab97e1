"""The claim/lease/outcome rules of the worker, in-process with an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from conftest import FakeClock
from db_rows import rows
from sqlalchemy import update
from sqlalchemy.engine import Engine

from service.handlers import HandlerEvent
from service.handlers.deliveries import utc_now
from service.outbox.backoff import RetryPolicy
from service.outbox.claims import claim_next
from service.outbox.models import HandlerRun
from service.outbox.records import mark_failed, mark_succeeded
from service.outbox.worker import Worker
from service.platform.db import make_session_factory, transaction


def test_backoff_ceiling_doubles_from_the_base_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=5, max_attempts=8, max_delay_seconds=100)
    assert [policy.ceiling(n) for n in range(1, 7)] == [5, 10, 20, 40, 80, 100]
    assert policy.delay(3, lambda: 0.5) == 10
    assert policy.delay(8, lambda: 0.5) is None


def test_an_expired_lease_is_claimed_again_and_the_old_holder_changes_nothing(
    post_job: Callable[..., Any], engine: Engine, clock: FakeClock
) -> None:
    post_job(status=2)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        first = claim_next(session, "worker-a", clock(), lease_seconds=30)
    assert first is not None
    with transaction(sessions) as session:
        assert claim_next(session, "worker-b", clock(), lease_seconds=30) is None
    clock.advance(30)
    with transaction(sessions) as session:
        second = claim_next(session, "worker-b", clock(), lease_seconds=30)
    assert second is not None and second.id == first.id and second.attempts == 2
    with transaction(sessions) as session:
        assert mark_succeeded(session, second.id, "worker-b", clock())
        assert not mark_failed(session, first.id, "worker-a", clock(), "late", None)
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.last_error, run.locked_by) == ("succeeded", None, None)


def test_a_run_whose_worker_died_every_time_goes_dead(
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    engine: Engine,
    clock: FakeClock,
) -> None:
    post_job(status=2)
    with engine.begin() as connection:
        connection.execute(
            update(HandlerRun).values(
                state="running",
                attempts=3,
                locked_by="gone",
                lease_expires_at=clock() - timedelta(seconds=1),
            )
        )
    assert make_worker(handler_max_attempts=3).run_once()
    [run] = rows(engine, HandlerRun)
    assert run.state == "dead"
    assert run.last_error == "the worker running it was lost on every attempt"


def test_a_run_claimed_while_stopping_is_released_without_using_an_attempt(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], engine: Engine
) -> None:
    post_job(status=2)
    stopping = threading.Event()
    stopping.set()
    assert make_worker().run_once(stopping)
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.attempts, run.locked_by, run.lease_expires_at) == (
        "pending",
        0,
        None,
        None,
    )


def test_the_lease_is_renewed_while_a_long_handler_runs(
    post_job: Callable[..., Any], engine: Engine
) -> None:
    started, finish = threading.Event(), threading.Event()

    def slow(event: HandlerEvent) -> None:
        started.set()
        finish.wait(10)

    def worker(name: str) -> Worker:
        return Worker(
            sessions=make_session_factory(engine),
            handlers={"mfa_prompt": slow},
            policy=RetryPolicy(5, 8),
            lease_seconds=0.6,
            worker_id=name,
            clock=utc_now,
        )

    post_job(status=2)
    holder = threading.Thread(target=worker("holder").run_once)
    holder.start()
    try:
        assert started.wait(10)
        rival = worker("rival")
        # Two lease lengths pass; the holder's renewals keep the run out of the rival's reach.
        for _ in range(12):
            assert not rival.run_once()
            finish.wait(0.1)
    finally:
        finish.set()
        holder.join(10)
    [run] = rows(engine, HandlerRun)
    assert (run.state, run.attempts) == ("succeeded", 1)


def test_runs_are_claimed_oldest_due_first(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker]
) -> None:
    count = 3
    seen: list[str] = []
    for index in range(count):
        post_job(guid=f"JOB-{index}", status=2)
    worker = make_worker()
    worker.handlers = {"mfa_prompt": lambda event: seen.append(event.job.guid)}
    while worker.run_once():
        pass
    assert seen == [f"JOB-{index}" for index in range(count)]


def test_a_stored_event_that_no_longer_validates_fails_the_attempt_not_the_worker(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], engine: Engine
) -> None:
    from service.jobs.models import JobEvent

    post_job(status=2)
    with engine.begin() as connection:
        connection.execute(update(JobEvent).values(payload={"guid": 7, "status": "two"}))
    assert make_worker().run_once()
    [run] = rows(engine, HandlerRun)
    assert run.state == "pending"
    assert run.last_error == "stored event no longer matches the job schema: 2 errors"


def test_one_claim_takes_a_batch_and_records_every_success(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], engine: Engine
) -> None:
    for index in range(5):
        post_job(guid=f"JOB-batch-{index}", status=2)
    seen: list[str] = []
    worker = make_worker()
    worker.claim_batch = 3
    worker.handlers = {"mfa_prompt": lambda event: seen.append(event.job.guid)}
    assert worker.run_once() == 3
    assert seen == [f"JOB-batch-{index}" for index in range(3)]
    assert worker.run_once() == 2
    assert worker.run_once() == 0
    runs = rows(engine, HandlerRun)
    assert [(run.state, run.attempts, run.locked_by) for run in runs] == [
        ("succeeded", 1, None)
    ] * 5


def test_a_failure_in_a_batch_is_retried_alone(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], engine: Engine
) -> None:
    for index in range(3):
        post_job(guid=f"JOB-mixed-{index}", status=2)

    def fail_the_second(event: HandlerEvent) -> None:
        if event.job.guid == "JOB-mixed-1":
            raise RuntimeError("receiver down")

    worker = make_worker()
    worker.claim_batch = 8
    worker.handlers = {"mfa_prompt": fail_the_second}
    assert worker.run_once() == 3
    states = {run.job_guid: (run.state, run.last_error) for run in rows(engine, HandlerRun)}
    assert states == {
        "JOB-mixed-0": ("succeeded", None),
        "JOB-mixed-1": ("pending", "RuntimeError: receiver down"),
        "JOB-mixed-2": ("succeeded", None),
    }


def test_a_busy_worker_still_takes_over_a_lost_workers_run_within_half_a_lease(
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    engine: Engine,
    clock: FakeClock,
) -> None:
    post_job(guid="JOB-lost", status=2)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        assert claim_next(session, "lost-worker", clock(), lease_seconds=30) is not None
    clock.advance(31)
    post_job(guid="JOB-new", status=2)
    worker = make_worker(handler_lease_seconds=30)
    worker.claim_batch = 1
    worker.handlers = {"mfa_prompt": lambda event: None}
    assert worker.run_once() == 1  # idle: looks for lost runs first
    assert worker.run_once() == 1  # busy, and the next look is half a lease away
    [lost, new] = rows(engine, HandlerRun)
    assert (lost.state, lost.attempts) == ("succeeded", 2)
    assert new.state == "succeeded"
