"""The console's door: the login, the headers every page carries, and the CSRF check that every
action must pass; a GET never changes anything."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from conftest import API_TOKEN, basic_header, bearer_header
from console_helpers import BROWSER_ACCEPT, form_token, login
from flask.testing import FlaskClient

PAGES = [
    "/",
    "/console/jobs",
    "/console/members",
    "/console/runs",
    "/console/quarantine",
    "/console/handlers",
    "/console/search?q=JOB",
]


@pytest.mark.parametrize("path", PAGES)
def test_no_login_is_refused_with_a_basic_challenge(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Accept": BROWSER_ACCEPT})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="jobhooks console"')
    assert "API token as the password" in response.get_data(as_text=True)


def test_the_webhook_password_does_not_open_the_console(client: FlaskClient) -> None:
    assert client.get("/", headers=basic_header()).status_code == 401


def test_any_user_name_with_an_api_token_or_the_bearer_opens_it(client: FlaskClient) -> None:
    assert client.get("/", headers=login("anyone")).status_code == 200
    assert client.get("/", headers=login("", "second-token")).status_code == 200
    assert client.get("/", headers=bearer_header()).status_code == 200
    assert client.get("/", headers=login("anyone", "not-a-token")).status_code == 401


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_locked_down(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers=login(), follow_redirects=True)

    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "script-src" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<script" not in html and ' style="' not in html
    # The one inline stylesheet is allowed by its hash, so the browser applies it.
    [style] = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert not re.search(r"(src|href)=\"https?://", html)


def test_the_browser_cookie_is_http_only_and_same_site(client: FlaskClient) -> None:
    cookie = client.get("/", headers=login()).headers["Set-Cookie"]

    assert cookie.startswith("jobhooks_console=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


def test_a_post_without_the_csrf_token_is_refused(client: FlaskClient) -> None:
    client.get("/console/handlers", headers=login())  # the browser has its cookie

    response = client.post("/console/handlers/alert/pause", headers=login())

    assert response.status_code == 403
    assert "CSRF" in response.get_data(as_text=True)
    assert "paused" not in client.get("/console/handlers", headers=login()).get_data(as_text=True)


def test_a_token_is_bound_to_the_browser_and_to_the_api_token(client: FlaskClient) -> None:
    token = form_token(client, "/console/handlers")
    pause = "/console/handlers/alert/pause"

    # The same API token from another browser (no cookie, or another one) is refused.
    stranger = client.application.test_client()
    assert stranger.post(pause, headers=login(), data={"csrf_token": token}).status_code == 403
    stranger.get("/", headers=login())
    assert stranger.post(pause, headers=login(), data={"csrf_token": token}).status_code == 403
    # The same browser logged in with another API token is refused.
    other = login("operator", "second-token")
    assert client.post(pause, headers=other, data={"csrf_token": token}).status_code == 403
    # A tampered token is refused; the right one works.
    assert (
        client.post(pause, headers=login(), data={"csrf_token": token[:-2] + "AA"}).status_code
        == 403
    )
    assert client.post(pause, headers=login(), data={"csrf_token": token}).status_code == 303


def test_a_forged_cookie_is_replaced_not_trusted(client: FlaskClient) -> None:
    client.set_cookie("jobhooks_console", "attacker-chosen")

    response = client.get("/", headers=login())

    assert "jobhooks_console=" in response.headers["Set-Cookie"]
    assert "attacker-chosen" not in response.headers["Set-Cookie"]


def test_refusals_are_json_for_programs_and_pages_for_browsers(client: FlaskClient) -> None:
    as_program = client.post("/console/handlers/alert/pause", headers=bearer_header())
    as_browser = client.post("/console/handlers/alert/pause", headers=login())

    assert as_program.status_code == as_browser.status_code == 403
    assert as_program.get_json()["error"] == "forbidden"
    assert as_browser.mimetype == "text/html"


def test_a_get_of_an_action_url_changes_nothing(client: FlaskClient) -> None:
    assert client.get("/console/handlers/alert/pause", headers=login()).status_code == 405
    assert client.get("/console/runs/1/retry", headers=login()).status_code == 405
    html = client.get("/console/handlers", headers=login()).get_data(as_text=True)
    assert "paused" not in html


def test_the_token_never_appears_in_a_page(client: FlaskClient) -> None:
    html = client.get("/console/handlers", headers=login()).get_data(as_text=True)

    assert API_TOKEN not in html
    assert hashlib.sha256(API_TOKEN.encode()).hexdigest()[:8] in html
