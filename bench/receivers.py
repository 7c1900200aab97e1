"""The webhook receivers the comparison drives, each started as a real process on 127.0.0.1.

- service: the Procfile's web command, unchanged.
- hello:   the same gunicorn command line and config, serving bench/hello_app.py instead.
- webhook: the Debian package `webhook` (Go), with bench/webhook_hooks.json running /bin/true.

service and hello may also be started under a given gunicorn worker class (WEB_WORKER_CLASS in
their environment, read by service/gunicorn_conf.py); they are then named "service/<class>" and
"hello/<class>". Every gunicorn receiver records the class gunicorn resolved from its config.

All of them answer POST /webhooks/mx/jobs with 204 when the Basic credentials match.
"""

from __future__ import annotations

import base64
import os
import re
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
    # The gunicorn worker class the receiver runs under; None for webhook.
    worker_class: str | None = None

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
    name: str,
    command: list[str],
    env: dict[str, str],
    url: str,
    serves_from_children: bool,
    worker_class: str | None = None,
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
        yield Receiver(name, url, process, serves_from_children, worker_class)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)


def resolved_worker_class(env: dict[str, str]) -> str:
    """The worker class gunicorn takes from the Procfile's web command under this environment.

    Asked of gunicorn itself (`--print-config`, which exits without serving), so the bench records
    what service/gunicorn_conf.py decides (WEB_WORKER_CLASS, else by database) and cannot drift
    from it. The config is the same whichever app is named; the hello app is the cheap one to load.
    """
    finished = subprocess.run(
        [*procfile_web_command(HELLO_APP), "--print-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=False,
    )
    match = re.search(r"^worker_class\s+=\s+(\S+)\s*$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or match is None:
        output = (finished.stderr or finished.stdout).strip()
        raise SystemExit(f"cannot read gunicorn's worker class ({finished.returncode}): {output}")
    return match.group(1)


def default_worker_class(database_url: str) -> str:
    """The class the Procfile's web command runs under on this database, with the bench's env."""
    with tempfile.TemporaryDirectory(prefix="jobhooks-bench-metrics-") as metrics_dir:
        return resolved_worker_class(receiver_environment(database_url, free_port(), metrics_dir))


def receiver_name(app: str, worker_class: str | None) -> str:
    """The app's name under the config's own choice of class; "<app>/<class>" under a given one."""
    return app if worker_class is None else f"{app}/{worker_class}"


@contextmanager
def gunicorn_receiver(
    name: str, database_url: str, app_spec: str | None, worker_class: str | None = None
) -> Iterator[Receiver]:
    """The Procfile's web command serving app_spec; worker_class None leaves the class to the
    config (and to WEB_WORKER_CLASS in the bench's own environment, if set)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobhooks-bench-metrics-") as metrics_dir:
        env = receiver_environment(database_url, port, metrics_dir)
        if worker_class is not None:
            env["WEB_WORKER_CLASS"] = worker_class
        resolved = resolved_worker_class(env)
        url = f"http://127.0.0.1:{port}{JOBS_PATH}"
        command = procfile_web_command(app_spec)
        with _running(
            name, command, env, url, serves_from_children=True, worker_class=resolved
        ) as receiver:
            yield receiver


@contextmanager
def service_receiver(database_url: str, worker_class: str | None = None) -> Iterator[Receiver]:
    name = receiver_name("service", worker_class)
    with gunicorn_receiver(name, database_url, None, worker_class) as receiver:
        yield receiver


@contextmanager
def hello_receiver(database_url: str, worker_class: str | None = None) -> Iterator[Receiver]:
    name = receiver_name("hello", worker_class)
    with gunicorn_receiver(name, database_url, HELLO_APP, worker_class) as receiver:
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
