"""Slow or oversized unauthenticated bodies against the real Procfile web process: a trickling
sender cannot hold the web threads, and what it claims counts as a failed authentication."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from conftest import BASIC_PASSWORD, BASIC_USER, SIGNING_SECRET, job_body
from procfile import HTTP_TIMEOUT_SECONDS, Served, serve_web
from sqlalchemy import func, select

from service.webhooks.models import AuthFailure

pytestmark = pytest.mark.serving

BODY_TIMEOUT_SECONDS = 2
SLOW_SENDERS = 20
# Each slow sender gives up after this long at most, answered or not: without a body deadline a
# valid delivery queued behind them would wait about this long.
TRICKLE_LIMIT_SECONDS = 20.0


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    with serve_web(
        database_url,
        tmp_path / "web.log",
        WEBHOOK_SIGNING_SECRETS=SIGNING_SECRET,
        BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_SECONDS),
        # Loopback is exempt by default; here every failure must be counted, none blocked.
        AUTH_FAILURE_EXEMPT="",
        AUTH_FAILURE_LIMIT="100000",
    ) as served:
        yield served


def signed_request_head(port: int, extra: str) -> bytes:
    return (
        "POST /webhooks/mx/jobs HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        "webhook-id: msg_slow\r\n"
        f"webhook-timestamp: {int(datetime.now(UTC).timestamp())}\r\n"
        "webhook-signature: v1,bm90IGEgcmVhbCBzaWduYXR1cmU=\r\n"
        f"{extra}\r\n"
    ).encode()


def trickle(port: int, answers: list[bytes], stop: threading.Event) -> None:
    """A chunked body, one byte every half second, until answered or the limit."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
        connection.sendall(signed_request_head(port, "Transfer-Encoding: chunked\r\n"))
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < TRICKLE_LIMIT_SECONDS:
            try:
                connection.sendall(b"1\r\nx\r\n")
                answer = connection.recv(64)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                answers.append(answer)
                return
            stop.wait(0.5)


def port_of(served: Served) -> int:
    return int(served.base_url.rsplit(":", 1)[1])


def test_trickling_signed_bodies_hold_no_thread_for_long_and_count_as_failures(
    served: Served,
) -> None:
    port = port_of(served)
    answers: list[bytes] = []
    stop = threading.Event()
    senders = [
        threading.Thread(target=trickle, args=(port, answers, stop), daemon=True)
        for _ in range(SLOW_SENDERS)
    ]
    for sender in senders:
        sender.start()
    time.sleep(0.5)  # let every slow sender take a thread

    started = time.monotonic()
    delivered = requests.post(
        f"{served.base_url}/webhooks/mx/jobs",
        json={"job": job_body(guid="JOB-past-the-trickle")},
        auth=(BASIC_USER, BASIC_PASSWORD),
        timeout=HTTP_TIMEOUT_SECONDS * 2,
    )
    waited = time.monotonic() - started
    health = requests.get(f"{served.base_url}/healthz", timeout=HTTP_TIMEOUT_SECONDS)
    for sender in senders:
        sender.join(timeout=TRICKLE_LIMIT_SECONDS + 2)
    stop.set()

    print(f"valid delivery answered after {waited:.2f} s behind {SLOW_SENDERS} slow senders")
    assert delivered.status_code == 204
    assert health.status_code == 200
    # More slow senders than threads: two waves of them at most, each cut off at the deadline.
    assert waited < BODY_TIMEOUT_SECONDS * 4
    assert len(answers) == SLOW_SENDERS
    assert all(answer.startswith(b"HTTP/1.1 401") for answer in answers), answers[:2]
    with served.engine.connect() as connection:
        counted = connection.execute(select(func.sum(AuthFailure.failures))).scalar_one()
    assert counted >= SLOW_SENDERS


def test_an_oversized_signed_body_is_refused_before_it_is_read(served: Served) -> None:
    port = port_of(served)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(signed_request_head(port, "Content-Length: 50000000\r\n"))
        started = time.monotonic()
        answer = connection.recv(64)

    assert answer.startswith(b"HTTP/1.1 413")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("allowed", "rotation_blocked"), [("10.9.9.9", True), ("127.0.0.1", False)]
)
def test_forwarded_addresses_count_only_from_a_trusted_proxy(
    database_url: str, tmp_path: Path, allowed: str, rotation_blocked: bool
) -> None:
    """Through a real socket from 127.0.0.1: when that peer is not the trusted proxy, rotating
    X-Forwarded-For changes nothing and the peer is blocked; when it is, each named address
    is counted on its own."""
    with serve_web(
        database_url,
        tmp_path / "web.log",
        TRUSTED_PROXY_COUNT="1",
        FORWARDED_ALLOW_IPS=allowed,
        AUTH_FAILURE_EXEMPT="",
        AUTH_FAILURE_LIMIT="3",
    ) as served:
        statuses = [
            requests.post(
                f"{served.base_url}/webhooks/mx/jobs",
                json={"job": job_body()},
                auth=(BASIC_USER, "a-wrong-guess"),
                headers={"X-Forwarded-For": f"198.51.100.{index}", "Connection": "close"},
                timeout=HTTP_TIMEOUT_SECONDS,
            ).status_code
            for index in range(8)
        ]
        with served.engine.connect() as connection:
            addresses = set(connection.scalars(select(AuthFailure.client_address)))

    if rotation_blocked:
        assert 429 in statuses
        assert addresses == {"127.0.0.1"}
    else:
        assert set(statuses) == {401}
        assert addresses == {f"198.51.100.{index}" for index in range(8)}
