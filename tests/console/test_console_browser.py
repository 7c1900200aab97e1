"""The console driven by Debian's headless Chromium through Playwright, on both databases:
find a job, retry a dead run, bulk-retry a handler's dead runs, replay an edited quarantined body,
and the refusals (no CSRF token, no login). Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import API_TOKEN, UNDER_CI, FakeClock, Sink, app_state
from console_helpers import catch_up, failing_worker, kill_runs, settle
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from service.jobs.models import Job
from service.outbox.models import HandlerRun, RunState
from service.outbox.worker import Worker

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTITUTIONS = [f"INS-{uuid.uuid5(uuid.NAMESPACE_URL, f'ins-{n}')}" for n in range(4)]
# A day of one member's refreshes, as MX reports them, oldest first.
REFRESH = [(0, "INITIATED"), (1, "REQUESTED"), (3, "RECEIVED"), (5, "PROCESSED"), (6, "COMPLETED")]


def realistic_guid(prefix: str, name: str) -> str:
    return f"{prefix}-{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def mx_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def database_name(database_url: str) -> str:
    return database_url.split(":", 1)[0].split("+")[0]


def require_chromium() -> None:
    if shutil.which(CHROMIUM) is None or not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if UNDER_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def served_app(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def browser() -> Iterator[Browser]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, served_app: str) -> Iterator[Page]:
    """A logged-in browser tab: any user name, an API token as the password."""
    context = browser.new_context(
        base_url=served_app,
        http_credentials={"username": "operator", "password": API_TOKEN},
        viewport={"width": 1360, "height": 900},
    )
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def shot(database_url: str) -> Callable[[Page, str], Path]:
    def take(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"console-{name}-{database_name(database_url)}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path

    return take


def run_states(app: Flask, handler: str) -> list[str]:
    with app_state(app).sessions() as session:
        return list(session.scalars(select(HandlerRun.state).where(HandlerRun.handler == handler)))


def seed_a_day(post_job: Callable[..., Any], worker: Worker, now: datetime) -> str:
    """Refreshes of a dozen members across four institutions over the last hours, some that
    needed MFA, were denied or halted, with the handler runs that died. The job to look at."""
    for n in range(12):
        member = realistic_guid("MBR", f"member-{n}")
        job = realistic_guid("JOB", f"job-{n}")
        steps = REFRESH if n % 4 else [*REFRESH[:2], (2, "CHALLENGED"), *REFRESH[2:]]
        if n in (0, 7):
            steps = [*REFRESH[:2], (9, "HALTED")]
        if n == 5:
            steps = [*REFRESH[:2], (8, "DENIED")]
        started = now - timedelta(hours=n + 1)
        for index, (status, name) in enumerate(steps):
            at = mx_time(started + timedelta(seconds=20 * index))
            response = post_job(
                guid=job,
                status=status,
                status_name=name,
                member_guid=member,
                user_guid=realistic_guid("USR", f"user-{n % 5}"),
                institution_guid=INSTITUTIONS[n % 4],
                is_authenticated=status not in (0, 1, 8),
                error_message="Institution is unavailable" if status == 9 else None,
                created_at=mx_time(started),
                started_at=mx_time(started),
                updated_at=at,
                finished_at=at if status in (6, 8, 9) else None,
            )
            assert response.status_code == 204
    settle(worker)
    return realistic_guid("JOB", "job-4")


def test_search_a_job_guid_then_see_its_timeline_and_runs(
    page: Page,
    app: Flask,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    shot: Callable[[Page, str], Path],
) -> None:
    job = seed_a_day(post_job, failing_worker(make_worker, sink), datetime.now(UTC))
    post_job(guid="not json at all", status="x")  # one quarantined delivery for the overview

    overview = page.goto("/")
    assert overview is not None and overview.status == 200
    assert page.locator("#status-chart rect").count() >= 5
    shot(page, "overview")
    page.fill("input[name=q]", job[:16])
    page.press("input[name=q]", "Enter")

    page.wait_for_url(f"**/console/jobs/{job}")
    assert page.title() == f"Job {job} · jobhooks console"
    timeline = page.locator("#timeline li")
    assert timeline.count() == 6
    assert "CHALLENGED (2)" in timeline.nth(2).inner_text()
    assert "COMPLETED (6)" in timeline.nth(5).inner_text()
    # Runs of the CHALLENGED step (superseded) and of COMPLETED (died against the 500s).
    assert page.locator("table.runs tr[data-run-id]").count() == 2
    page.locator("#timeline li").nth(5).locator("summary").click()
    assert f'"guid": "{job}"' in page.locator("#timeline li").nth(5).locator("pre").inner_text()
    shot(page, "job")
    page.go_back()
    page.wait_for_url("**/")


def test_retry_a_dead_run_from_its_page_and_it_runs_again(
    page: Page,
    clock: FakeClock,
    app: Flask,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    shot: Callable[[Page, str], Path],
) -> None:
    worker = failing_worker(make_worker, sink)
    kill_runs(post_job, worker, ["JOB-browser-retry"])
    assert run_states(app, "mfa_prompt") == [RunState.DEAD]

    page.goto("/console/jobs/JOB-browser-retry")
    page.locator("table.runs tr[data-run-state=dead] a").first.click()
    page.click("#retry-run button")

    assert "is queued again" in page.locator("#notice").inner_text()
    assert run_states(app, "mfa_prompt") == [RunState.PENDING]
    sink.status = 204
    catch_up(clock)
    settle(worker)
    page.reload()
    assert page.locator("#run-state").inner_text() == "succeeded"
    assert run_states(app, "mfa_prompt") == [RunState.SUCCEEDED]
    assert len(sink.requests) == 2
    shot(page, "retried-run")


def test_bulk_retry_of_one_handlers_dead_runs(
    page: Page,
    app: Flask,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    shot: Callable[[Page, str], Path],
) -> None:
    worker = failing_worker(make_worker, sink)
    kill_runs(post_job, worker, [f"JOB-browser-bulk-{n}" for n in range(4)])
    kill_runs(post_job, worker, ["JOB-browser-halted"], status=9)

    page.goto("/")
    page.click("a[href='/console/runs?state=dead&handler=mfa_prompt']")
    assert page.locator("tr[data-run-state=dead]").count() == 4
    page.click("#retry-dead-link")
    assert "4 dead runs of mfa_prompt" in page.locator("#dead-count").inner_text()
    shot(page, "bulk-retry-confirm")
    page.click("#confirm-retry-dead button")

    assert "Re-queued 4 dead run(s) of mfa_prompt" in page.locator("#notice").inner_text()
    assert page.locator("tr[data-run-state=pending]").count() == 4
    assert run_states(app, "mfa_prompt") == [RunState.PENDING] * 4
    assert run_states(app, "alert") == [RunState.DEAD]


def test_replay_a_quarantined_body_after_editing_it(
    page: Page,
    app: Flask,
    client: Any,
    ingest_headers: dict[str, str],
    shot: Callable[[Page, str], Path],
) -> None:
    bad = {"job": {"guid": "JOB-browser-replay", "status": "HALTED"}}
    assert client.post("/webhooks/mx/jobs", json=bad, headers=ingest_headers).status_code == 422

    page.goto("/console/quarantine")
    page.locator("tr[data-rejected-id] a").first.click()
    body = page.locator("textarea[name=body]")
    body.fill(body.input_value().replace('"HALTED"', "9"))
    shot(page, "replay-edit")
    page.click("#replay-edited button")

    page.wait_for_url("**/console/jobs/JOB-browser-replay?notice=replayed*")
    assert "HALTED (9)" in page.locator("#job-facts").inner_text()
    with app_state(app).sessions() as session:
        job = session.get(Job, "JOB-browser-replay")
        assert job is not None and job.status == 9


def test_a_post_without_the_csrf_token_is_refused(page: Page, app: Flask) -> None:
    page.goto("/console/handlers")

    response = page.request.post("/console/handlers/alert/pause", form={"paused": "yes"})

    assert response.status == 403
    page.reload()
    assert page.locator("tr[data-handler=alert] button").inner_text() == "Pause"


def test_no_login_is_refused(browser: Browser, served_app: str) -> None:
    """Headless Chromium cancels the login dialog a 401 opens (net::ERR_INVALID_AUTH_CREDENTIALS),
    so the answer is read through the browser context's own request API."""
    context = browser.new_context(base_url=served_app)
    try:
        for path in ("/", "/console/jobs"):
            response = context.request.get(path)
            assert response.status == 401
            assert response.headers["www-authenticate"].startswith("Basic ")
    finally:
        context.close()
