"""What the console's tests share: logging in, reading a page's CSRF token, and handler runs
that died (a receiver that keeps answering 500, one attempt each)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import API_TOKEN, NOTIFY_SECRET, FakeClock, Sink, basic_header, drain
from flask.testing import FlaskClient

from service.outbox.worker import Worker

# What a browser sends: it asks for HTML first.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
# When the jobs the console's tests post changed status: inside the overview's last 24 hours
# whatever day the tests run, on the hour so a timeline's minutes are easy to read.
RECENTLY = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def login(user: str = "operator", token: str = API_TOKEN) -> dict[str, str]:
    return {**basic_header(user, token), "Accept": BROWSER_ACCEPT}


def csrf_token_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


def form_token(client: FlaskClient, path: str) -> str:
    """Load a page as the logged-in browser (keeping its cookie) and return its form token."""
    response = client.get(path, headers=login())
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return csrf_token_from(response.get_data(as_text=True))


def failing_worker(make_worker: Callable[..., Worker], sink: Sink) -> Worker:
    """Delivers to a receiver that answers 500 (until told otherwise), one attempt per run."""
    sink.status = 500
    return make_worker(
        notify_url=sink.url,
        notify_signing_secret=NOTIFY_SECRET,
        alert_url=sink.url,
        handler_max_attempts=1,
        # Many failures in a row must not open the circuit: these tests want dead runs.
        handler_circuit_failures=10_000,
    )


def kill_runs(
    post_job: Callable[..., Any], worker: Worker, guids: list[str], status: int = 2
) -> None:
    """Post one job per guid in `status` and let the worker's one attempt at its run fail."""
    for guid in guids:
        response = post_job(
            guid=guid,
            status=status,
            member_guid=f"MBR-of-{guid}",
            updated_at=RECENTLY.isoformat(),
        )
        assert response.status_code == 204
    settle(worker)


def catch_up(clock: FakeClock) -> None:
    """The console stamps a retry with the real time; the worker's clock must have reached it
    for the run to be due (a browser test easily outlasts the clock's one-second lead)."""
    clock.now = max(clock.now, datetime.now(UTC) + timedelta(seconds=1))


def settle(worker: Worker, rounds: int = 5) -> None:
    """drain() stops at the first claim that delivered nothing, and a claim whose runs all
    turned out moot (superseded) is one; a few more rounds reach the runs behind it."""
    for _ in range(rounds):
        drain(worker)
