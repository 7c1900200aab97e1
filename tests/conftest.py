"""Fixtures: every database test runs on a real SQLite file and on a real PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL. Without it the PostgreSQL half is skipped locally, but
under CI (CI=true) a missing or unreachable PostgreSQL fails the run instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from werkzeug.test import TestResponse

from service.app import create_app
from service.config import Settings
from service.context import EXTENSION_KEY, AppState
from service.handlers.registry import load_handlers
from service.jobs.commits import job_commits
from service.outbox.relevance import relevance
from service.outbox.runner import retry_policy
from service.outbox.worker import CircuitPolicy, Worker
from service.platform import migrations as migrate
from service.platform.db import make_session_factory
from service.platform.models import Base

BASIC_USER = "mx"
BASIC_PASSWORD = "mx-test-password"
API_TOKEN = "test-api-token"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Signs what the handlers deliver to NOTIFY_URL in tests; never an inbound secret.
NOTIFY_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_unavailable(reason: str) -> None:
    if UNDER_CI:
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        _postgres_unavailable("TEST_DATABASE_URL is not set")
    url = Settings.from_env({"DATABASE_URL": url}).database_url
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as connection:
            # Start from an empty schema so migrations are exercised from scratch each run.
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    except Exception as error:  # any connection failure is reported the same way
        _postgres_unavailable(f"cannot connect: {type(error).__name__}: {error}")
    finally:
        engine.dispose()
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "jobhooks.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _truncate_all(url: str) -> None:
    """Empty every table and restart its ids. DELETE, not TRUNCATE: a test leaves a few rows,
    and TRUNCATE gives each of the partitions' many files a new one (~150 ms a test, not ~5)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            existing = set(inspect(connection).get_table_names())
            for table in reversed(Base.metadata.sorted_tables):
                if table.name in existing:
                    connection.execute(text(f'DELETE FROM "{table.name}"'))
            sequences = connection.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
            ).scalars()
            for sequence in list(sequences):
                connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each kind, private to the test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "jobhooks.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_all(url)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated database of each kind shared by one module's tests (for costly servers)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("module-db") / "jobhooks.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_all(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        basic_auth=((BASIC_USER, BASIC_PASSWORD), ("mx-old", "rotated-out-soon")),
        signing_secrets=(SIGNING_SECRET,),
        api_tokens=(API_TOKEN, "second-token"),
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app_state(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def documented_app() -> Flask:
    """An app built only to read its routes and their documentation; it touches no database."""
    return create_app(Settings(database_url="sqlite:///:memory:", allow_unauthenticated=True))


def app_state(app: Flask) -> AppState:
    state: AppState = app.extensions[EXTENSION_KEY]
    return state


@pytest.fixture
def engine(app: Flask) -> Engine:
    return app_state(app).engine


def refuse_every_commit(app: Flask) -> None:
    """A registry naming a handler the database refuses (NOT NULL): every job commit fails at
    its last insert, after the event and the current state were written."""
    state = app_state(app)

    def refused_handler(code: int) -> list[Any]:
        return [None]

    app.extensions[EXTENSION_KEY] = replace(
        state,
        handlers_for=refused_handler,
        job_commits=job_commits(state.sessions, refused_handler, state.cross_source_rules),
    )


def basic_header(user: str = BASIC_USER, password: str = BASIC_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer_header(token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ingest_headers() -> dict[str, str]:
    return basic_header()


@pytest.fixture
def api_headers() -> dict[str, str]:
    return bearer_header()


def assert_error_shape(response: TestResponse, status: int, code: str | None = None) -> list[Any]:
    """Every error is JSON {"error", "message", "details": [{"field", "message"}]}, no traceback."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert "Traceback" not in response.get_data(as_text=True)
    document = response.get_json()
    assert set(document) == {"error", "message", "details"}
    assert isinstance(document["message"], str) and document["message"]
    if code is not None:
        assert document["error"] == code
    for detail in document["details"]:
        assert set(detail) == {"field", "message"}
    details: list[Any] = document["details"]
    return details


def job_body(**overrides: Any) -> dict[str, Any]:
    """A job object shaped like MX's aggregation-job callback."""
    body: dict[str, Any] = {
        "guid": "JOB-6f1c2e0a-4d6b-4c1e-9b7a-1a2b3c4d5e6f",
        "member_guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
        "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
        "institution_guid": "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
        "status": 6,
        "status_name": "COMPLETED",
        "is_authenticated": True,
        "error_message": None,
        "created_at": "2026-11-25T10:00:00+00:00",
        "started_at": "2026-11-25T10:00:01+00:00",
        "updated_at": "2026-11-25T10:00:30+00:00",
        "finished_at": "2026-11-25T10:00:30+00:00",
    }
    body.update(overrides)
    return body


@pytest.fixture
def post_job(client: FlaskClient, ingest_headers: dict[str, str]) -> Callable[..., Any]:
    """Post a job (wrapped as MX does by default) and return the response."""

    def post(body: dict[str, Any] | None = None, *, wrap: bool = True, **overrides: Any) -> Any:
        job = body if body is not None else job_body(**overrides)
        return client.post(
            "/webhooks/mx/jobs", json={"job": job} if wrap else job, headers=ingest_headers
        )

    return post


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.time() when the request was read

    def json(self) -> Any:
        return json.loads(self.body)


class Sink:
    """A real HTTP receiver on 127.0.0.1 that records every POST and answers as told."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.status = 200
        self._scripted: list[int] = []
        self._hold = 0
        self._released = threading.Event()
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._request_handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then with `status`."""
        self._scripted.extend(statuses)

    def hold(self, count: int = 1) -> None:
        """Record the next `count` requests but answer them only after release() (or 30 s)."""
        self._hold += count

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ReceivedRequest]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with sink._arrived:
                    sink.requests.append(ReceivedRequest(self.path, headers, body, time.time()))
                    status = sink._scripted.pop(0) if sink._scripted else sink.status
                    held = sink._hold > 0
                    sink._hold -= 1 if held else 0
                    sink._arrived.notify_all()
                if held:
                    sink._released.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output for failures

        return Handler


@pytest.fixture
def make_sink() -> Iterator[Callable[[], Sink]]:
    sinks: list[Sink] = []

    def make() -> Sink:
        sinks.append(Sink())
        return sinks[-1]

    yield make
    for sink in sinks:
        sink.close()


@pytest.fixture
def sink(make_sink: Callable[[], Sink]) -> Sink:
    return make_sink()


class FakeClock:
    """Time that moves only when a test says so; starts just after the real now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_worker(
    engine: Engine, settings: Settings, clock: FakeClock
) -> Iterator[Callable[..., Worker]]:
    """An in-process worker on the test's database, with an injected clock and random source."""
    http = requests.Session()

    def make(jitter: Callable[[], float] = lambda: 0.5, **overrides: Any) -> Worker:
        configured = replace(settings, **overrides)
        return Worker(
            sessions=make_session_factory(engine),
            handlers=load_handlers(configured, http, clock),
            policy=retry_policy(configured),
            lease_seconds=configured.handler_lease_seconds,
            clock=clock,
            jitter=jitter,
            circuit=CircuitPolicy.from_settings(configured),
            relevance=relevance(configured.handler_max_age_seconds),
            rate_limits=dict(configured.handler_rate_limits),
        )

    yield make
    http.close()


def drain(worker: Worker, limit: int = 50) -> int:
    """Run due work until none is left; bounded so a bug cannot spin forever."""
    for done in range(limit):
        if not worker.run_once():
            return done
    raise AssertionError("work never ran out")
