"""`jobhooks worker` as real processes: sharing the table, kill -9, SIGTERM, start-up checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Sink
from db_rows import rows
from sqlalchemy.engine import Engine

from service.outbox.models import HandlerRun

WORKER = str(Path(sys.executable).parent / "jobhooks")
NOTIFY_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
CONFIG_NAMES = ("HANDLERS", "NOTIFY_URL", "ALERT_URL", "NOTIFY_SIGNING_SECRET", "DATABASE_URL")


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [WORKER, "worker"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def lines(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for line in self.log_path.read_text().splitlines()
            if line.startswith("{")
        ]

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines()]

    def wait_for_message(self, message: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if message in self.messages():
                return
            assert self.process.poll() is None, self.log_path.read_text()
            time.sleep(0.05)
        raise AssertionError(f"no {message!r} within {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def spawn_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def spawn(**settings: str) -> WorkerProcess:
        env = {name: value for name, value in os.environ.items() if name not in CONFIG_NAMES}
        env.update(DATABASE_URL=database_url, WORKER_POLL_SECONDS="0.1", **settings)
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.stop()


def notify_to(sink: Sink, **extra: str) -> dict[str, str]:
    return {"NOTIFY_URL": sink.url, "NOTIFY_SIGNING_SECRET": NOTIFY_SECRET, **extra}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_two_workers_deliver_200_challenged_events_exactly_once(
    spawn_worker: Callable[..., WorkerProcess],
    post_job: Callable[..., Any],
    sink: Sink,
    engine: Engine,
) -> None:
    workers = [spawn_worker(**notify_to(sink)) for _ in range(2)]
    for worker in workers:
        worker.wait_for_message("worker started")

    for index in range(200):
        assert post_job(guid=f"JOB-{index:04d}", status=2).status_code == 204
    wait_until(
        lambda: all(run.state == "succeeded" for run in rows(engine, HandlerRun)),
        60,
        "every run to succeed",
    )
    time.sleep(0.5)  # room for a stray second delivery to show up

    runs = rows(engine, HandlerRun)
    assert len(runs) == 200
    assert len(sink.requests) == 200
    assert sorted(r.headers["webhook-id"] for r in sink.requests) == sorted(
        run.idempotency_key for run in runs
    )
    assert {run.attempts for run in runs} == {1}
    shares = [worker.messages().count("handler run succeeded") for worker in workers]
    assert sum(shares) == 200
    assert min(shares) > 0, f"one worker did all the work: {shares}"
    for worker in workers:
        assert NOTIFY_SECRET.removeprefix("whsec_") not in worker.log_path.read_text()


def test_one_worker_process_runs_several_claim_loops_without_double_delivery(
    spawn_worker: Callable[..., WorkerProcess],
    post_job: Callable[..., Any],
    sink: Sink,
    engine: Engine,
) -> None:
    worker = spawn_worker(**notify_to(sink, WORKER_CONCURRENCY="3"))
    worker.wait_for_message("worker started")

    for index in range(60):
        assert post_job(guid=f"JOB-loop-{index:03d}", status=2).status_code == 204
    wait_until(
        lambda: all(run.state == "succeeded" for run in rows(engine, HandlerRun)),
        60,
        "every run to succeed",
    )
    time.sleep(0.5)  # room for a stray second delivery to show up

    assert len(sink.requests) == 60
    assert len({request.headers["webhook-id"] for request in sink.requests}) == 60
    started = [line for line in worker.lines() if line["message"] == "handler run started"]
    assert len(started) == 60
    [announcement] = [line for line in worker.lines() if line["message"] == "worker started"]
    assert len(announcement["worker_ids"]) == 3
    assert {line["worker_id"] for line in started} <= set(announcement["worker_ids"])


def test_a_run_whose_worker_is_killed_is_delivered_again_after_the_lease(
    spawn_worker: Callable[..., WorkerProcess],
    post_job: Callable[..., Any],
    sink: Sink,
    engine: Engine,
) -> None:
    lease = notify_to(sink, HANDLER_LEASE_SECONDS="2", HANDLER_TIMEOUT_SECONDS="30")
    doomed = spawn_worker(**lease)
    sink.hold()  # the first delivery hangs, so the worker is mid-run when it dies
    post_job(status=2)
    sink.wait_for(1)
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    killed_at = time.time()
    [orphan] = rows(engine, HandlerRun)
    assert orphan.state == "running"
    assert orphan.lease_expires_at is not None

    spawn_worker(**lease)
    second = sink.wait_for(2, timeout=20)
    assert len(second) == 2, "the orphaned run was never delivered again"
    first_delivery, redelivery = second
    assert redelivery.headers["webhook-id"] == first_delivery.headers["webhook-id"]
    assert redelivery.body == first_delivery.body
    # Not before the dead worker's lease ran out.
    assert redelivery.received_at >= orphan.lease_expires_at.timestamp()
    assert redelivery.received_at - killed_at < 10
    print(
        f"kill -9 on {engine.dialect.name}: lease ran out "
        f"{orphan.lease_expires_at.timestamp() - killed_at:.2f}s after the kill, redelivered "
        f"{redelivery.received_at - killed_at:.2f}s after it with the same webhook-id"
    )
    wait_until(lambda: rows(engine, HandlerRun)[0].state == "succeeded", 10, "success")
    [run] = rows(engine, HandlerRun)
    assert (run.attempts, run.idempotency_key) == (2, orphan.idempotency_key)


def test_sigterm_finishes_the_run_in_hand_and_claims_nothing_more(
    spawn_worker: Callable[..., WorkerProcess],
    post_job: Callable[..., Any],
    sink: Sink,
    engine: Engine,
) -> None:
    worker = spawn_worker(**notify_to(sink))
    worker.wait_for_message("worker started")
    sink.hold()
    post_job(guid="JOB-first", status=2)
    sink.wait_for(1)

    worker.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # the signal lands while the delivery is still in flight
    # Due after the signal: an idle loop that had already begun a claim before it could take a
    # run due earlier, but none may start a claim now.
    post_job(guid="JOB-second", status=2)
    time.sleep(0.5)  # more than the idle loops' poll interval
    assert worker.process.poll() is None, "stopped without finishing the run in hand"
    sink.release()
    assert worker.process.wait(timeout=15) == 0

    first, second = rows(engine, HandlerRun)
    assert (first.job_guid, first.state) == ("JOB-first", "succeeded")
    assert (second.state, second.attempts, second.locked_by) == ("pending", 0, None)
    assert len(sink.requests) == 1
    messages = worker.messages()
    assert messages.index("worker stopping") < messages.index("handler run succeeded")
    assert messages[-1] == "worker stopped"


def test_worker_refuses_to_start_with_an_unknown_handler(
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    worker = spawn_worker(HANDLERS="CHALLENGED=mfa_prompt,typo_handler")
    assert worker.process.wait(timeout=20) == 2
    output = worker.log_path.read_text().strip().splitlines()
    assert output == [
        "jobhooks: configuration error: HANDLERS: unknown handler 'typo_handler' for CHALLENGED; "
        "registered handlers: alert, data_ready, mfa_prompt, user_action_required"
    ]
