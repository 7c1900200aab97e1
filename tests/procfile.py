"""Running the Procfile's own commands (release, web, worker) as real processes for a test."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import API_TOKEN, BASIC_PASSWORD, BASIC_USER
from sqlalchemy.engine import Engine

from service.platform.db import make_engine

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


def ingest_environment(database_url: str, port: int, **extra: str) -> dict[str, str]:
    defaults = {
        "PORT": str(port),
        "WEBHOOK_BASIC_AUTH": f"{BASIC_USER}:{BASIC_PASSWORD},mx-old:rotated-out-soon",
        "API_TOKENS": API_TOKEN,
        "WEB_CONCURRENCY": "2",
    }
    return process_environment(database_url, **{**defaults, **extra})


@dataclass(frozen=True)
class Served:
    base_url: str
    engine: Engine
    log_path: Path
    environment: dict[str, str]


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy booting to answer
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


def run_jobhooks(
    environment: Mapping[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    """The `jobhooks` console script, as an operator would type it."""
    return subprocess.run(
        [str(VENV_BIN / "jobhooks"), *arguments],
        cwd=REPO_ROOT,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def serve_web(database_url: str, log_path: Path, **extra: str) -> Iterator[Served]:
    """Release, then the Procfile's web process on a free port; stopped however the test ends."""
    port = free_port()
    environment = ingest_environment(database_url, port, **extra)
    run_release(environment)
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
            yield Served(base_url, engine, log_path, environment)
        finally:
            stop(process)
            engine.dispose()
