"""Failed authentications are limited per client address, with one count shared by every process."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from conftest import basic_header, bearer_header, job_body
from db_rows import rows
from flask import Flask
from sqlalchemy.engine import Engine

from service.app import create_app
from service.config import Settings
from service.context import EXTENSION_KEY
from service.webhooks import ratelimit
from service.webhooks.models import AuthFailure

LIMIT = 3


@pytest.fixture
def limited_settings(settings: Settings) -> Settings:
    # The test client comes from 127.0.0.1, which production exempts by default. Windows are
    # fixed (aligned to the epoch): a day-long one keeps a test's few requests from straddling
    # two of them, which a minute-long one did when a test ran across a minute's turn.
    return dataclasses.replace(
        settings,
        auth_failure_limit=LIMIT,
        auth_failure_window_seconds=86_400,
        auth_failure_exempt=(),
    )


@pytest.fixture
def two_processes(limited_settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    """Two apps on one database: as two gunicorn workers or two machines would be."""
    first, second = create_app(limited_settings), create_app(limited_settings)
    yield first, second
    for app in (first, second):
        app.extensions[EXTENSION_KEY].engine.dispose()


def post(app: Flask, headers: dict[str, str]) -> int:
    response = app.test_client().post(
        "/webhooks/mx/jobs", json={"job": job_body()}, headers=headers
    )
    return response.status_code


WRONG = basic_header("mx", "guess")


def test_address_is_refused_with_429_after_too_many_failures(
    two_processes: tuple[Flask, Flask],
) -> None:
    app, _ = two_processes
    statuses = [post(app, WRONG) for _ in range(LIMIT + 2)]

    assert statuses[: LIMIT + 1] == [401] * (LIMIT + 1)
    assert statuses[LIMIT + 1] == 429


def test_blocked_address_is_refused_even_with_the_right_password(
    two_processes: tuple[Flask, Flask],
) -> None:
    app, _ = two_processes
    for _ in range(LIMIT + 1):
        post(app, WRONG)

    response = app.test_client().post(
        "/webhooks/mx/jobs", json={"job": job_body()}, headers=basic_header()
    )

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"] == "too_many_failed_authentications"


def test_failures_are_counted_across_processes(
    two_processes: tuple[Flask, Flask], engine: Engine
) -> None:
    first, second = two_processes
    for _ in range(LIMIT):
        assert post(first, WRONG) == 401
    # The second process has seen no failure itself, but the shared count is already at the limit.
    assert post(second, WRONG) == 401
    assert post(second, basic_header()) == 429
    assert sum(row.failures for row in rows(engine, AuthFailure)) == LIMIT + 1


def test_a_block_made_by_one_process_holds_in_every_other(
    two_processes: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_processes
    assert post(second, basic_header()) == 204  # the second process has looked once already
    for _ in range(LIMIT + 1):
        assert post(first, WRONG) == 401
    # The second process reads the shared blocks once a second; let that second pass.
    monkeypatch.setattr(ratelimit, "REFRESH_SECONDS", 0.0)

    assert [post(second, basic_header()) for _ in range(4)] == [429] * 4


def test_failed_api_tokens_count_too(two_processes: tuple[Flask, Flask]) -> None:
    app, _ = two_processes
    client = app.test_client()
    for _ in range(LIMIT + 1):
        assert client.get("/jobs/JOB-1", headers=bearer_header("wrong")).status_code == 401

    assert client.get("/jobs/JOB-1", headers=bearer_header()).status_code == 429


def test_successful_requests_write_no_counters(
    two_processes: tuple[Flask, Flask], engine: Engine
) -> None:
    app, _ = two_processes
    for _ in range(LIMIT * 2):
        assert post(app, basic_header()) == 204

    assert rows(engine, AuthFailure) == []


def test_loopback_clients_are_exempt_by_default(settings: Settings, engine: Engine) -> None:
    app = create_app(dataclasses.replace(settings, auth_failure_limit=LIMIT))
    try:
        statuses = [post(app, WRONG) for _ in range(LIMIT + 3)]
        assert statuses == [401] * (LIMIT + 3)
        assert post(app, basic_header()) == 204
        assert rows(engine, AuthFailure) == []
    finally:
        app.extensions[EXTENSION_KEY].engine.dispose()


@pytest.fixture
def behind_proxy(limited_settings: Settings) -> Iterator[Flask]:
    app = create_app(
        dataclasses.replace(
            limited_settings, trusted_proxy_count=1, forwarded_allow_ips=("10.0.0.1",)
        )
    )
    yield app
    app.extensions[EXTENSION_KEY].engine.dispose()


def post_from(app: Flask, peer: str, forwarded_for: str, headers: dict[str, str]) -> int:
    response = app.test_client().post(
        "/webhooks/mx/jobs",
        json={"job": job_body()},
        headers={**headers, "X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": peer},
    )
    return response.status_code


def test_a_client_that_is_not_the_proxy_cannot_rotate_its_address(behind_proxy: Flask) -> None:
    statuses = [
        post_from(behind_proxy, "203.0.113.9", f"198.51.100.{n}", WRONG) for n in range(LIMIT + 2)
    ]

    assert statuses[LIMIT + 1] == 429


def test_a_client_cannot_get_another_address_blocked(behind_proxy: Flask) -> None:
    for _ in range(LIMIT + 1):
        post_from(behind_proxy, "203.0.113.9", "198.51.100.7", WRONG)

    # The address it named still gets through the trusted proxy.
    assert post_from(behind_proxy, "10.0.0.1", "198.51.100.7", basic_header()) == 204


def test_the_trusted_proxy_names_the_client_and_a_malformed_name_is_ignored(
    behind_proxy: Flask, engine: Engine
) -> None:
    post_from(behind_proxy, "10.0.0.1", "198.51.100.7", WRONG)
    post_from(behind_proxy, "10.0.0.1", "not-an-address\u2028", WRONG)

    assert sorted(row.client_address for row in rows(engine, AuthFailure)) == [
        "10.0.0.1",
        "198.51.100.7",
    ]
