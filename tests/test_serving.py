"""The Procfile's own commands: `release` migrates, `web` serves real HTTP through gunicorn."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import API_TOKEN, BASIC_PASSWORD, BASIC_USER, job_body
from db_rows import count, rows
from sqlalchemy.engine import Engine

from service.db import make_engine
from service.models import HandlerRun, Job, JobEvent, RejectedDelivery

pytestmark = pytest.mark.serving

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15
HTTP_TIMEOUT_SECONDS = 10


def procfile_commands() -> dict[str, list[str]]:
    commands = {}
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            commands[name.strip()] = shlex.split(command.strip())
    return commands


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The contract's variables on top of a clean PATH that finds the project's gunicorn first."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    environment = {name: os.environ[name] for name in keep if name in os.environ}
    environment["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    environment["DATABASE_URL"] = database_url
    environment.update(extra)
    return environment


@dataclass(frozen=True)
class Served:
    base_url: str
    engine: Engine
    log_path: Path


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer /healthz in {STARTUP_TIMEOUT_SECONDS}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


def run_release(environment: Mapping[str, str]) -> None:
    finished = subprocess.run(
        procfile_commands()["release"],
        cwd=REPO_ROOT,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    environment = process_environment(
        database_url,
        PORT=str(port),
        WEBHOOK_BASIC_AUTH=f"{BASIC_USER}:{BASIC_PASSWORD},mx-old:rotated-out-soon",
        API_TOKENS=API_TOKEN,
        WEB_CONCURRENCY="2",
    )
    run_release(environment)
    log_path = tmp_path / "gunicorn.log"
    engine = make_engine(database_url)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            procfile_commands()["web"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_healthy(process, base_url, log_path)
            yield Served(base_url, engine, log_path)
        finally:
            stop(process)
            engine.dispose()


def post_job(served: Served, document: object, **kwargs: object) -> requests.Response:
    return requests.post(
        f"{served.base_url}/webhooks/mx/jobs",
        json=document,
        auth=(BASIC_USER, BASIC_PASSWORD),
        timeout=HTTP_TIMEOUT_SECONDS,
        **kwargs,  # type: ignore[arg-type]
    )


def test_procfile_web_process_stores_a_delivery_posted_over_http(served: Served) -> None:
    body = {
        "job": job_body(status=2, status_name="CHALLENGED", updated_at="2026-11-25T05:00:30-05:00")
    }
    guid = body["job"]["guid"]

    first = post_job(served, body)
    retry = post_job(served, body)

    assert (first.status_code, retry.status_code) == (204, 204)
    assert first.content == b""
    assert count(served.engine, JobEvent, job_guid=guid) == 1
    assert [run.handler for run in rows(served.engine, HandlerRun)] == ["mfa_prompt"]
    detail = requests.get(
        f"{served.base_url}/jobs/{guid}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert detail.status_code == 200
    assert detail.json()["job"]["updated_at"] == "2026-11-25T10:00:30Z"
    assert (
        requests.get(f"{served.base_url}/readyz", timeout=HTTP_TIMEOUT_SECONDS).status_code == 200
    )


def test_procfile_web_process_reads_a_chunked_body(served: Served) -> None:
    payload = json.dumps({"job": job_body(guid="JOB-chunked")}).encode()
    chunks = iter([payload[:10], payload[10:]])

    response = requests.post(
        f"{served.base_url}/webhooks/mx/jobs",
        data=chunks,
        headers={"Content-Type": "application/json"},
        auth=(BASIC_USER, BASIC_PASSWORD),
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 204
    assert count(served.engine, Job, guid="JOB-chunked") == 1


def test_procfile_web_process_answers_errors_as_json_over_http(served: Served) -> None:
    url = f"{served.base_url}/webhooks/mx/jobs"

    unauthenticated = requests.post(url, json={"job": job_body()}, timeout=HTTP_TIMEOUT_SECONDS)
    invalid = post_job(served, {"job": {"status": "two"}})
    too_large = post_job(served, {"job": job_body(error_message="x" * (70 * 1024))})
    not_json = requests.post(
        url,
        data=b"guid=JOB-1",
        auth=(BASIC_USER, BASIC_PASSWORD),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
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
    assert [r.status_code for r in rows(served.engine, RejectedDelivery)] == [422, 413, 415]
    assert count(served.engine, JobEvent) == 0


def test_procfile_web_process_refuses_to_start_without_ingest_credentials(
    tmp_path: Path,
) -> None:
    environment = process_environment(
        f"sqlite:///{tmp_path / 'unused.db'}", PORT=str(free_port()), API_TOKENS=API_TOKEN
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
    assert "WEBHOOK_BASIC_AUTH" in line
