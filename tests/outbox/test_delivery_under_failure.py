"""Delivery when receivers misbehave, through real `jobhooks worker` processes and real HTTP
receivers: lanes keep a slow handler from delaying others, the circuit breaker spares a failing
receiver, superseded prompts are never sent, and a paused handler waits for its resume.

Figures (alert delay, requests during an outage, time to drain) are printed; `-s` shows them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import NOTIFY_SECRET, ReceivedRequest, bearer_header
from db_rows import rows
from flask.testing import FlaskClient
from procfile import process_environment
from sqlalchemy.engine import Engine
from test_worker_processes import WorkerProcess, wait_until

from service.outbox.backoff import RetryPolicy
from service.outbox.models import HandlerRun

RETRY_BASE_SECONDS = 0.2


class ProbeStalled(AssertionError):
    """Known bug: a probe that lands on a moot run leaves the circuit half open, no probe out."""


@dataclass(frozen=True)
class Hit:
    """One POST a receiver got, and the status it answered."""

    request: ReceivedRequest
    status: int

    @property
    def document(self) -> Any:
        return self.request.json()

    @property
    def type(self) -> str | None:
        kind: str | None = self.document.get("type")
        return kind

    @property
    def job_guid(self) -> str | None:
        guid: str | None = self.document.get("data", {}).get("job_guid")
        return guid

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Receiver:
    """A real HTTP receiver on 127.0.0.1: records each POST as it arrives, then waits `delay`
    seconds and answers `status` (both as set when the request arrived; the test may change them
    at any time). Its threads are daemons and close() wakes any that are sleeping."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._request_handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def wait_for(self, check: Callable[[list[Hit]], bool], timeout: float, what: str) -> None:
        wait_until(lambda: check(self.hits), timeout, what)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, delay = receiver.status, receiver.delay
                request = ReceivedRequest(self.path, headers, body, time.time())
                with receiver._lock:
                    receiver._hits.append(Hit(request, status))
                if delay:
                    receiver._closing.wait(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the worker was killed while this receiver kept it waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output for the figures and for failures

        return Handler


@pytest.fixture
def make_receiver() -> Iterator[Callable[[], Receiver]]:
    receivers: list[Receiver] = []

    def make() -> Receiver:
        receivers.append(Receiver())
        return receivers[-1]

    yield make
    for receiver in receivers:
        receiver.close()


@pytest.fixture
def spawn_workers(
    make_receiver: Callable[[], Receiver], database_url: str, tmp_path: Path
) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """`count` real `jobhooks worker` processes, started and announced; SIGKILLed at teardown,
    since one may be stuck behind a slow receiver (torn down before the receivers)."""
    started: list[WorkerProcess] = []

    def spawn(count: int, **settings: str) -> list[WorkerProcess]:
        environment = process_environment(database_url, WORKER_POLL_SECONDS="0.1", **settings)
        new = [
            WorkerProcess(environment, tmp_path / f"worker-{len(started) + index}.log")
            for index in range(count)
        ]
        started.extend(new)
        for worker in new:
            worker.wait_for_message("worker started")
        return new

    yield spawn
    for worker in started:
        worker.stop()


def destinations(notify: Receiver, alert: Receiver, **extra: str) -> dict[str, str]:
    return {
        "NOTIFY_URL": notify.url,
        "NOTIFY_SIGNING_SECRET": NOTIFY_SECRET,
        "ALERT_URL": alert.url,
        **extra,
    }


def post(post_job: Callable[..., Any], guid: str, status: int, name: str, **fields: Any) -> float:
    """Post one job callback; when (time.time()) its 204 came back."""
    response = post_job(guid=guid, status=status, status_name=name, **fields)
    assert response.status_code == 204, response.get_data(as_text=True)
    return time.time()


def circuit_of(client: FlaskClient, handler: str) -> dict[str, Any]:
    answer = client.get("/handlers", headers=bearer_header())
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [state] = [entry for entry in answer.json["handlers"] if entry["handler"] == handler]
    return dict(state)


def states(engine: Engine, handler: str) -> list[str]:
    return [run.state for run in rows(engine, HandlerRun, handler=handler)]


def attempts_without_a_breaker(runs: int, outage_seconds: float) -> int:
    """The fewest requests `runs` failing runs make in the outage with retries alone: even if
    every jittered wait is its longest, a run is tried again while the waits so far fit."""
    policy = RetryPolicy(RETRY_BASE_SECONDS)
    attempts, waited = 1, policy.ceiling(1)
    while waited <= outage_seconds:
        attempts += 1
        waited += policy.ceiling(attempts)
    return runs * attempts


def test_a_slow_receiver_for_prompts_does_not_delay_the_halted_alert(
    spawn_workers: Callable[..., list[WorkerProcess]],
    make_receiver: Callable[[], Receiver],
    post_job: Callable[..., Any],
    engine: Engine,
) -> None:
    notify, alert = make_receiver(), make_receiver()
    notify.delay = 30.0
    # The slow receiver answers within the timeout: the prompt loops are busy, not failing.
    spawn_workers(
        1, **destinations(notify, alert, WORKER_CONCURRENCY="4", HANDLER_TIMEOUT_SECONDS="60")
    )

    for index in range(40):
        post(post_job, f"JOB-slow-{index:02d}", 2, "CHALLENGED")
    notify.wait_for(bool, 10, "the first prompt to reach the slow receiver")
    halted_at = post(post_job, "JOB-halted", 9, "HALTED", error_message="maintenance")

    alert.wait_for(bool, 10, "the HALTED alert")
    [received] = alert.hits
    delay = received.request.received_at - halted_at
    prompts = states(engine, "mfa_prompt")
    print(
        f"\nlanes on {engine.dialect.name}: HALTED alert reached ALERT_URL {delay:.2f}s after "
        f"its 204; {len(notify.hits)} prompts in flight at the 30 s receiver, "
        f"{prompts.count('pending')} pending, {prompts.count('running')} running"
    )
    assert "JOB-halted" in received.document["text"]
    assert delay < 5.0, f"the alert waited {delay:.2f}s behind the slow prompts"
    assert len(prompts) == 40
    assert "succeeded" not in prompts, "the slow receiver answered before the alert went out"
    assert prompts.count("pending") >= 40 - 2 * 8, "the prompts were not stuck behind the receiver"
    # The worker records the outcome once the receiver has answered: shortly after the hit.
    wait_until(lambda: states(engine, "alert") == ["succeeded"], 5, "the alert recorded")


@pytest.mark.parametrize("processes", [1, 2])
def test_circuit_spares_a_failing_receiver_alerts_once_and_drains_after_recovery(
    processes: int,
    spawn_workers: Callable[..., list[WorkerProcess]],
    make_receiver: Callable[[], Receiver],
    post_job: Callable[..., Any],
    client: FlaskClient,
    engine: Engine,
) -> None:
    notify, alert = make_receiver(), make_receiver()
    notify.status = 500
    spawn_workers(
        processes,
        **destinations(
            notify,
            alert,
            HANDLER_CIRCUIT_FAILURES="3",
            HANDLER_CIRCUIT_COOLDOWN_SECONDS="1",
            HANDLER_RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
        ),
    )
    outage_seconds = 6.0
    outage_ends = time.monotonic() + outage_seconds
    for index in range(10):
        post(post_job, f"JOB-outage-{index:02d}", 2, "CHALLENGED")

    seen: set[str] = set()
    while time.monotonic() < outage_ends:
        seen.add(circuit_of(client, "mfa_prompt")["circuit"])
        time.sleep(0.1)
    notify.status = 200
    recovered_at = time.time()
    during_outage = [hit for hit in notify.hits if not hit.ok]

    wait_until(
        lambda: states(engine, "mfa_prompt") == ["succeeded"] * 10,
        10,
        "every prompt to succeed after the receiver recovered",
    )
    wait_until(
        lambda: set(states(engine, "alert")) == {"succeeded"}, 5, "the circuit alert to go out"
    )
    time.sleep(0.3)  # room for a stray delivery to show up
    delivered = [hit for hit in notify.hits if hit.ok]
    drained = max(hit.request.received_at for hit in delivered) - recovered_at
    baseline = attempts_without_a_breaker(10, outage_seconds)
    alerts = alert.hits
    print(
        f"\ncircuit on {engine.dialect.name} with {processes} worker(s): "
        f"{len(during_outage)} requests in the {outage_seconds:.0f}s outage (retries alone: at "
        f"least {baseline}); circuit seen {sorted(seen)}; drained {drained:.2f}s after recovery; "
        f"{len(alerts)} alert(s)"
    )
    assert "open" in seen, f"GET /handlers never showed the circuit open: {sorted(seen)}"
    assert 3 <= len(during_outage) <= baseline // 2
    assert "dead" not in states(engine, "mfa_prompt")
    assert drained < 5.0
    assert len(delivered) == 10
    assert len({hit.job_guid for hit in delivered}) == 10
    assert {hit.type for hit in notify.hits} == {"job.mfa_prompt"}
    state = circuit_of(client, "mfa_prompt")
    assert (state["circuit"], state["consecutive_failures"]) == ("closed", 0)
    texts = [hit.document["text"] for hit in alerts]
    assert texts and all("mfa_prompt" in text for text in texts), texts
    assert len(texts) == 1, f"one outage, {len(texts)} alerts: {texts}"


@pytest.mark.parametrize("processes", [1, 2])
def test_a_prompt_overtaken_by_completed_is_superseded_and_never_delivered(
    processes: int,
    spawn_workers: Callable[..., list[WorkerProcess]],
    make_receiver: Callable[[], Receiver],
    post_job: Callable[..., Any],
    engine: Engine,
) -> None:
    notify, alert = make_receiver(), make_receiver()
    notify.status = 500
    spawn_workers(
        processes,
        **destinations(
            notify,
            alert,
            HANDLER_CIRCUIT_FAILURES="1000",
            HANDLER_RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
        ),
    )
    guid = "JOB-overtaken"
    post(post_job, guid, 2, "CHALLENGED", updated_at="2026-11-25T10:00:30+00:00")
    notify.wait_for(bool, 10, "the prompt's first (failing) attempt")
    post(post_job, guid, 6, "COMPLETED", updated_at="2026-11-25T10:01:00+00:00")

    # Superseded at its next claim, while the receiver is still down.
    wait_until(lambda: states(engine, "mfa_prompt") == ["superseded"], 10, "the prompt superseded")
    superseded_at = time.time()
    notify.status = 200
    recovered_at = time.time()
    wait_until(lambda: states(engine, "data_ready") == ["succeeded"], 10, "data_ready delivered")
    time.sleep(0.5)  # room for a stray prompt to show up

    hits = notify.hits
    prompts = [hit for hit in hits if hit.type == "job.mfa_prompt"]
    [ready] = [hit for hit in hits if hit.ok]
    [run] = rows(engine, HandlerRun, handler="mfa_prompt")
    print(
        f"\nsupersede on {engine.dialect.name} with {processes} worker(s): "
        f"{len(prompts)} failed prompt attempt(s) before COMPLETED overtook it; data_ready "
        f"delivered {ready.request.received_at - recovered_at:.2f}s after recovery"
    )
    assert prompts and all(not hit.ok for hit in prompts)
    assert all(hit.request.received_at < superseded_at for hit in prompts)
    assert run.attempts == len(prompts), "a superseded claim counted as an attempt"
    assert (ready.type, ready.job_guid, ready.document["data"]["status"]) == (
        "job.data_ready",
        guid,
        6,
    )
    assert ready.document["data"]["previous_status_name"] == "CHALLENGED"
    assert not alert.hits


def test_a_paused_handler_waits_for_resume_while_alerts_flow(
    spawn_workers: Callable[..., list[WorkerProcess]],
    make_receiver: Callable[[], Receiver],
    post_job: Callable[..., Any],
    client: FlaskClient,
    engine: Engine,
) -> None:
    notify, alert = make_receiver(), make_receiver()
    spawn_workers(1, **destinations(notify, alert))
    paused = client.post("/handlers/mfa_prompt/pause", headers=bearer_header())
    assert paused.status_code == 202, paused.get_data(as_text=True)
    assert (paused.json["handler"], paused.json["paused"]) == ("mfa_prompt", True)
    assert circuit_of(client, "mfa_prompt")["paused"] is True

    posted_at = post(post_job, "JOB-paused-prompt", 2, "CHALLENGED")
    halted_at = post(post_job, "JOB-paused-halted", 9, "HALTED")
    quiet_until = time.monotonic() + 5.0
    while time.monotonic() < quiet_until:
        assert not notify.hits, "a paused handler delivered"
        time.sleep(0.05)
    [received] = alert.hits
    [prompt] = rows(engine, HandlerRun, handler="mfa_prompt")
    assert (prompt.state, prompt.attempts) == ("pending", 0)
    waiting = circuit_of(client, "mfa_prompt")
    assert (waiting["paused"], waiting["due_runs"]) == (True, 1)

    resumed = client.post("/handlers/mfa_prompt/resume", headers=bearer_header())
    assert resumed.status_code == 202, resumed.get_data(as_text=True)
    resumed_at = time.time()
    assert resumed.json["paused"] is False
    notify.wait_for(bool, 10, "the prompt after resume")
    time.sleep(0.5)  # room for a stray second delivery to show up

    [delivered] = notify.hits
    print(
        f"\npause on {engine.dialect.name}: alert {received.request.received_at - halted_at:.2f}s "
        f"after its 204 while the prompt waited {resumed_at - posted_at:.1f}s; prompt delivered "
        f"{delivered.request.received_at - resumed_at:.2f}s after resume"
    )
    assert "JOB-paused-halted" in received.document["text"]
    assert (delivered.type, delivered.job_guid) == ("job.mfa_prompt", "JOB-paused-prompt")
    assert delivered.ok
    [prompt] = rows(engine, HandlerRun, handler="mfa_prompt")
    assert (prompt.state, prompt.attempts) == ("succeeded", 1)
    assert delivered.request.headers["webhook-id"] == prompt.idempotency_key


def test_a_probe_that_lands_on_a_superseded_prompt_does_not_stall_the_handler(
    spawn_workers: Callable[..., list[WorkerProcess]],
    make_receiver: Callable[[], Receiver],
    post_job: Callable[..., Any],
    client: FlaskClient,
    engine: Engine,
) -> None:
    notify, alert = make_receiver(), make_receiver()
    notify.status = 500
    spawn_workers(
        1,
        **destinations(
            notify,
            alert,
            HANDLER_CIRCUIT_FAILURES="1",
            HANDLER_CIRCUIT_COOLDOWN_SECONDS="1",
            HANDLER_RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
        ),
    )
    post(post_job, "JOB-stale", 2, "CHALLENGED", updated_at="2026-11-25T10:00:30+00:00")
    wait_until(lambda: circuit_of(client, "mfa_prompt")["circuit"] == "open", 5, "circuit open")
    post(post_job, "JOB-stale", 6, "COMPLETED", updated_at="2026-11-25T10:01:00+00:00")
    notify.status = 200  # only now: a probe that beat the COMPLETED fails and reopens the circuit
    # The stale prompt's retry falls due before the fresh one: it is what the probe claims.
    wait_until(
        lambda: rows(engine, HandlerRun, handler="mfa_prompt")[0].due_at.timestamp() < time.time(),
        5,
        "the stale prompt's retry to fall due",
    )
    fresh_at = post(post_job, "JOB-fresh", 2, "CHALLENGED")

    deadline = time.monotonic() + 3.0  # the cool-down is 1 s
    while time.monotonic() < deadline and not any(
        hit.job_guid == "JOB-fresh" for hit in notify.hits
    ):
        time.sleep(0.05)
    fresh = [hit for hit in notify.hits if hit.job_guid == "JOB-fresh"]
    state = circuit_of(client, "mfa_prompt")
    print(
        f"\nprobe on a superseded prompt on {engine.dialect.name}: fresh prompt "
        + (
            f"delivered {fresh[0].request.received_at - fresh_at:.2f}s after its 204"
            if fresh
            else f"not delivered in 3 s; circuit {state['circuit']}, {state['due_runs']} due"
        )
    )
    assert states(engine, "mfa_prompt")[0] == "superseded"
    assert not [
        hit
        for hit in notify.hits
        if hit.type == "job.mfa_prompt" and hit.ok and hit.job_guid == "JOB-stale"
    ]
    if not fresh:
        raise ProbeStalled(f"handler stalled: {state}, runs {states(engine, 'mfa_prompt')}")
    assert fresh[0].ok
