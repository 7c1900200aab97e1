"""The Procfile's own commands: `release` migrates, `web` serves real HTTP through gunicorn."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import API_TOKEN, BASIC_PASSWORD, BASIC_USER, job_body
from db_rows import count, rows, wait_until_a_query_waits_for_a_lock
from procfile import (
    HTTP_TIMEOUT_SECONDS,
    REPO_ROOT,
    STARTUP_TIMEOUT_SECONDS,
    Served,
    free_port,
    process_environment,
    procfile_commands,
    serve_web,
)

from service.jobs.models import Job, JobEvent
from service.outbox.models import HandlerRun
from service.webhooks.models import RejectedDelivery

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """One database per kind for the module, so gunicorn starts once per kind, not per test.

    SQLite starts as an empty file, so the release command builds the whole schema itself.
    Rows from other tests may remain in PostgreSQL; each test here uses its own job guids.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('served') / 'jobhooks.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="module")
def served(served_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with serve_web(served_database_url, log_path) as served:
        yield served


def unique_guid(label: str) -> str:
    return f"JOB-served-{label}-{uuid.uuid4().hex}"


def post_job(
    served: Served, document: object, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        f"{served.base_url}/webhooks/mx/jobs",
        json=document,
        auth=(BASIC_USER, BASIC_PASSWORD),
        headers=headers,
        timeout=HTTP_TIMEOUT_SECONDS,
    )


def test_procfile_web_process_stores_a_delivery_posted_over_http(served: Served) -> None:
    guid = unique_guid("stored")
    body = {
        "job": job_body(
            guid=guid, status=2, status_name="CHALLENGED", updated_at="2026-11-25T05:00:30-05:00"
        )
    }

    first = post_job(served, body)
    retry = post_job(served, body)

    assert (first.status_code, retry.status_code) == (204, 204)
    assert first.content == b""
    assert count(served.engine, JobEvent, job_guid=guid) == 1
    assert [run.handler for run in rows(served.engine, HandlerRun, job_guid=guid)] == ["mfa_prompt"]
    detail = requests.get(
        f"{served.base_url}/jobs/{guid}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert detail.status_code == 200
    assert detail.json()["job"]["updated_at"] == "2026-11-25T10:00:30Z"
    ready = requests.get(f"{served.base_url}/readyz", timeout=HTTP_TIMEOUT_SECONDS)
    assert ready.status_code == 200


def post_when_both_ready(
    served: Served, document: dict[str, object], barrier: threading.Barrier
) -> int:
    barrier.wait()
    return post_job(served, document).status_code


def test_procfile_web_process_stores_racing_copies_of_a_delivery_once(served: Served) -> None:
    for _ in range(3):
        guid = unique_guid("race")
        body = {"job": job_body(guid=guid, status=9, status_name="HALTED")}
        barrier = threading.Barrier(2, timeout=HTTP_TIMEOUT_SECONDS)

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(post_when_both_ready, served, body, barrier) for _ in "ab"]
            statuses = [future.result() for future in futures]

        assert statuses == [204, 204]
        assert count(served.engine, JobEvent, job_guid=guid) == 1
        assert count(served.engine, HandlerRun, job_guid=guid, handler="alert") == 1


def test_procfile_web_process_reads_a_chunked_body(served: Served) -> None:
    guid = unique_guid("chunked")
    payload = json.dumps({"job": job_body(guid=guid)}).encode()

    response = requests.post(
        f"{served.base_url}/webhooks/mx/jobs",
        data=iter([payload[:10], payload[10:]]),  # an iterator makes requests send it chunked
        headers={"Content-Type": "application/json"},
        auth=(BASIC_USER, BASIC_PASSWORD),
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 204
    assert count(served.engine, Job, guid=guid) == 1


def test_procfile_web_process_answers_errors_as_json_over_http(served: Served) -> None:
    url = f"{served.base_url}/webhooks/mx/jobs"
    run = uuid.uuid4().hex  # tags this test's rejected deliveries via webhook-id

    unauthenticated = requests.post(
        url,
        json={"job": job_body(guid=unique_guid("unauthenticated"))},
        headers={"webhook-id": f"{run}-401"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    invalid = post_job(served, {"job": {"status": "two"}}, {"webhook-id": f"{run}-422"})
    too_large = post_job(
        served,
        {"job": job_body(guid=unique_guid("large"), error_message="x" * (70 * 1024))},
        {"webhook-id": f"{run}-413"},
    )
    not_json = requests.post(
        url,
        data=b"guid=JOB-1",
        auth=(BASIC_USER, BASIC_PASSWORD),
        headers={"Content-Type": "application/x-www-form-urlencoded", "webhook-id": f"{run}-415"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Basic")
    assert invalid.status_code == 422
    assert {d["field"] for d in invalid.json()["details"]} == {"job.guid", "job.status"}
    assert too_large.status_code == 413
    assert not_json.status_code == 415
    for response in (unauthenticated, invalid, too_large, not_json):
        assert set(response.json()) == {"error", "message", "details"}
        assert "Traceback" not in response.text
    quarantined = {
        rejected.delivery_id: rejected.status_code
        for rejected in rows(served.engine, RejectedDelivery)
        if (rejected.delivery_id or "").startswith(run)
    }
    # The unauthenticated body is refused without being kept.
    assert quarantined == {f"{run}-422": 422, f"{run}-413": 413, f"{run}-415": 415}


def raw_http(served: Served, request_bytes: bytes) -> bytes:
    """Send bytes no HTTP client library would produce, then stop sending; return the answer."""
    host, port = served.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT_SECONDS) as connection:
        connection.sendall(request_bytes)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ("Transfer-Encoding: chunked", b"zz\r\n{}\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked", b"2\r\n{}}}}\r\n0\r\n\r\n"),
        ("Content-Length: 500", b'{"job": {"guid": "JOB-cut-off", "status": 6}}'),
    ],
    ids=["bad-chunk-size", "missing-chunk-terminator", "shorter-than-content-length"],
)
def test_procfile_web_process_answers_a_body_broken_in_transit_with_400(
    served: Served, framing: str, body: bytes
) -> None:
    credentials = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    head = (
        "POST /webhooks/mx/jobs HTTP/1.1\r\nHost: jobhooks\r\nConnection: close\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    )

    answer = raw_http(served, head.encode() + body)

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    document = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert document["error"] == "unreadable_body"
    assert count(served.engine, Job, guid="JOB-cut-off") == 0  # a fragment is never taken as sent


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "WEBHOOK_BASIC_AUTH"),  # no ingest credentials at all
        ({"WEBHOOK_BASIC_AUTH": "mx-without-password"}, "WEBHOOK_BASIC_AUTH"),
        ({"WEBHOOK_BASIC_AUTH": "mx:secret", "PORT": "99999"}, "PORT"),
        ({"WEBHOOK_BASIC_AUTH": "mx:secret", "MAX_BODY_BYTES": "64k"}, "MAX_BODY_BYTES"),
    ],
    ids=["no-credentials", "malformed-credentials", "bad-port", "bad-number"],
)
def test_procfile_web_process_refuses_to_start_with_one_line_on_bad_settings(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    environment = process_environment(
        f"sqlite:///{tmp_path / 'unused.db'}",
        **{"PORT": str(free_port()), "API_TOKENS": API_TOKEN, **settings},
    )

    finished = subprocess.run(
        procfile_commands()["web"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_SECONDS,
    )

    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr
    [line] = [line for line in finished.stderr.splitlines() if "configuration error" in line]
    assert named in line


def test_a_delivery_waiting_on_postgresql_does_not_stop_its_process_answering(
    postgres_url: str, tmp_path: Path
) -> None:
    """One web process: while a delivery waits on a table lock, the process still answers.

    On PostgreSQL the web process serves from greenlets; a driver wait that did not yield to
    them would freeze every request of the process until the lock is released.
    """
    with serve_web(postgres_url, tmp_path / "web.log", WEB_CONCURRENCY="1") as served:
        blocker = served.engine.connect()
        transaction = blocker.begin()
        blocker.exec_driver_sql("LOCK TABLE job_events IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(
                post_job, served, {"job": job_body(guid=unique_guid("locked"), status=2)}
            )
            try:
                wait_until_a_query_waits_for_a_lock(served.engine, STARTUP_TIMEOUT_SECONDS)
                health = requests.get(f"{served.base_url}/healthz", timeout=2)
                assert health.status_code == 200
                assert not waiting.done()
            finally:
                transaction.rollback()
                blocker.close()
            assert waiting.result(timeout=HTTP_TIMEOUT_SECONDS).status_code == 204
