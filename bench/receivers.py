"""The three webhook receivers the comparison drives, each started as a real process on 127.0.0.1.

- service: the Procfile's web command, unchanged.
- hello:   the same gunicorn command line and config, serving bench/hello_app.py instead.
- webhook: the Debian package `webhook` (Go), with bench/webhook_hooks.json running /bin/true.

All three answer POST /webhooks/mx/jobs with 204 when the Basic credentials match.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
JOBS_PATH = "/webhooks/mx/jobs"
BASIC_USER, BASIC_PASSWORD = "bench", "bench-password"
API_TOKEN = "bench-token"
HELLO_APP = "bench.hello_app:create_app()"
STARTUP_SECONDS = 30
STOP_SECONDS = 30
INSTALL_HINT = "sudo apt-get update && sudo apt-get install -y webhook wrk"


def authorization_header() -> str:
    token = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    return f"Basic {token}"


def require_binaries(*names: str) -> None:
    """CI never runs the bench, so the tools are not project dependencies: say how to get them."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise SystemExit(f"bench needs {', '.join(missing)} on PATH; install with: {INSTALL_HINT}")


def procfile_web_command(app_spec: str | None = None) -> list[str]:
    """The Procfile's web line; with app_spec, the same line serving another WSGI app."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, separator, command = line.partition(":")
        if separator and name.strip() == "web":
            arguments = shlex.split(command.strip())
            if app_spec is None:
                return arguments
            # gunicorn takes the WSGI app as its one positional argument, last on the line.
            if ":" not in arguments[-1]:
                raise SystemExit(f"cannot find the app argument in the web line: {command}")
            return [*arguments[:-1], app_spec]
    raise SystemExit("Procfile has no web process")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def receiver_environment(database_url: str, port: int, metrics_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "WEBHOOK_BASIC_AUTH": f"{BASIC_USER}:{BASIC_PASSWORD}",
        "API_TOKENS": API_TOKEN,
        # Owned here rather than by gunicorn_conf, so the directory goes away with the run.
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "BENCH_AUTHORIZATION": authorization_header(),
    }


def migrate(database_url: str) -> None:
    """The Procfile's release step: `jobhooks db upgrade`."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [str(BIN / "jobhooks"), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@dataclass
class Receiver:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    # gunicorn serves from forked workers; webhook serves from its one process (its children are
    # the short-lived /bin/true runs, not servers).
    serves_from_children: bool

    def serving_processes(self) -> list[psutil.Process]:
        main = psutil.Process(self.process.pid)
        return main.children() if self.serves_from_children else [main]


def _accepts_a_job(url: str) -> bool:
    body = {"job": {"guid": f"JOB-ready-{uuid.uuid4()}", "status": 0}}
    try:
        answer = requests.post(
            url, json=body, headers={"Authorization": authorization_header()}, timeout=2
        )
    except requests.RequestException:
        return False
    return answer.status_code == 204


@contextmanager
def _running(
    name: str, command: list[str], env: dict[str, str], url: str, serves_from_children: bool
) -> Iterator[Receiver]:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _accepts_a_job(url):
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode} during start-up")
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not accept a job within {STARTUP_SECONDS}s")
            time.sleep(0.2)
        yield Receiver(name, url, process, serves_from_children)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)


@contextmanager
def gunicorn_receiver(name: str, database_url: str, app_spec: str | None) -> Iterator[Receiver]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobhooks-bench-metrics-") as metrics_dir:
        env = receiver_environment(database_url, port, metrics_dir)
        url = f"http://127.0.0.1:{port}{JOBS_PATH}"
        command = procfile_web_command(app_spec)
        with _running(name, command, env, url, serves_from_children=True) as receiver:
            yield receiver


@contextmanager
def service_receiver(database_url: str) -> Iterator[Receiver]:
    with gunicorn_receiver("service", database_url, None) as receiver:
        yield receiver


@contextmanager
def hello_receiver(database_url: str) -> Iterator[Receiver]:
    with gunicorn_receiver("hello", database_url, HELLO_APP) as receiver:
        yield receiver


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    port = free_port()
    env = receiver_environment("", port, "")
    # The prefix makes its URL the service's path, so one wrk script serves all three.
    command = [
        "webhook",
        "-template",
        "-hooks",
        str(BENCH / "webhook_hooks.json"),
        "-ip",
        "127.0.0.1",
        "-port",
        str(port),
        "-urlprefix",
        JOBS_PATH.rsplit("/", 1)[0].strip("/"),
    ]
    url = f"http://127.0.0.1:{port}{JOBS_PATH}"
    with _running("webhook", command, env, url, serves_from_children=False) as receiver:
        yield receiver


@contextmanager
def served_service(database_url: str) -> Iterator[str]:
    """The Procfile's web process, migrated and accepting jobs; yields its base URL."""
    migrate(database_url)
    with service_receiver(database_url) as receiver:
        yield receiver.url.removesuffix(JOBS_PATH)


def ensure_database(url: str) -> None:
    """Create a PostgreSQL bench database on first use, so the figures never touch real data."""
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as db:
        exists = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
        if exists.fetchone() is None:
            # Identifiers cannot be bound parameters; the name comes from our own URL.
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(target.database))))
