"""The operator status page at /: protected, server-rendered, working in headless Chromium."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_TOKEN, UNDER_CI, basic_header, bearer_header
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

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


def post_timeline(post_job: Callable[..., Any], guid: str) -> None:
    for status, minute in ((0, "00"), (2, "01"), (6, "02")):
        response = post_job(guid=guid, status=status, updated_at=f"2026-11-25T10:{minute}:00Z")
        assert response.status_code == 204


def test_page_needs_a_token(client: FlaskClient) -> None:
    response = client.get("/")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_page_refuses_the_webhook_password(client: FlaskClient) -> None:
    assert client.get("/", headers=basic_header()).status_code == 401


def test_page_accepts_bearer_or_basic_with_an_api_token(client: FlaskClient) -> None:
    assert client.get("/", headers=bearer_header()).status_code == 200
    assert client.get("/", headers=basic_header("anyone", API_TOKEN)).status_code == 200


def test_page_lists_jobs_with_timelines_counts_and_security_headers(
    client: FlaskClient, post_job: Callable[..., Any]
) -> None:
    post_timeline(post_job, "JOB-page-1")

    response = client.get("/", headers=bearer_header())

    html = response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert 'data-job-guid="JOB-page-1"' in html
    assert html.count('class="chip current"') >= 2  # the current column and the timeline
    assert "CHALLENGED (2)" in html and "COMPLETED (6)" in html
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_page_escapes_what_mx_sent(client: FlaskClient, post_job: Callable[..., Any]) -> None:
    assert post_job(guid="JOB-<script>", error_message="<b>boom</b>").status_code == 204

    html = client.get("/", headers=bearer_header()).get_data(as_text=True)

    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>boom</b>" not in html


@pytest.fixture
def served_app(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def browser_available() -> None:
    if shutil.which(CHROMIUM) is None or not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if UNDER_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def test_page_renders_in_headless_chromium(
    served_app: str, post_job: Callable[..., Any], database_url: str
) -> None:
    browser_available()
    from playwright.sync_api import sync_playwright

    post_timeline(post_job, "JOB-in-the-browser")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"status-page-{database_url.split(':', 1)[0].split('+')[0]}.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": "operator", "password": API_TOKEN}
            )
            page = context.new_page()
            response = page.goto(served_app + "/")
            assert response is not None and response.status == 200
            assert page.title() == "jobhooks status"
            row = page.locator("tr[data-job-guid='JOB-in-the-browser']")
            assert row.count() == 1
            assert row.locator(".chip").count() == 4  # current status + three timeline steps
            assert page.locator("#counts-24h").inner_text().count("(2)") == 1
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 1000
