"""What each console page shows, read through the same queries as the API; links are real URLs."""

from __future__ import annotations

import html as html_text
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from conftest import Sink
from console_helpers import RECENTLY, failing_worker, kill_runs, login
from flask.testing import FlaskClient

from service.outbox.worker import Worker

MEMBER = "MBR-console-1"
USER = "USR-console-1"


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path, headers=login())
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    return html_text.unescape(response.get_data(as_text=True))


def post_timeline(post_job: Callable[..., Any], guid: str, **fields: Any) -> None:
    for status, minute in ((0, 0), (2, 1), (6, 2)):
        at = RECENTLY + timedelta(minutes=minute)
        response = post_job(guid=guid, status=status, updated_at=at.isoformat(), **fields)
        assert response.status_code == 204


def test_overview_counts_link_to_the_lists_behind_them(
    client: FlaskClient,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
) -> None:
    post_timeline(post_job, "JOB-overview-1", member_guid=MEMBER)
    kill_runs(post_job, failing_worker(make_worker, sink), ["JOB-halted-1"], status=9)
    post_job(guid="JOB-halted-2", status=9, institution_guid="INS-down")

    html = page(client, "/")

    assert 'id="status-chart"' in html and "<svg" in html
    # A count written out with its status name, linking to the jobs behind it.
    assert re.search(r'href="/console/jobs\?status=9&updated_since=[^"]+"', html)
    assert "HALTED (9)" in html and "CHALLENGED (2)" in html
    assert 'href="/console/runs?state=dead"' in html
    assert 'href="/console/runs?state=dead&handler=alert"' in html
    assert 'href="/console/quarantine"' in html
    assert "INS-down" in html  # HALTED per institution, last hour
    assert "handler lag p50" in html and "handler lag p99" in html
    assert 'data-job-guid="JOB-overview-1"' in html


def test_overview_of_an_empty_service(client: FlaskClient) -> None:
    html = page(client, "/")

    assert "No status changes in the last 24 hours." in html
    assert "No HALTED jobs in the last hour." in html


def test_search_goes_straight_to_the_one_match(
    client: FlaskClient, post_job: Callable[..., Any]
) -> None:
    post_timeline(post_job, "JOB-find-me-123", member_guid=MEMBER, user_guid=USER)

    def lands_on(text: str) -> str:
        response = client.get("/console/search", query_string={"q": text}, headers=login())
        assert response.status_code == 303
        return response.headers["Location"]

    assert lands_on("JOB-find-me-123") == "/console/jobs/JOB-find-me-123"
    assert lands_on("  JOB-find-me") == "/console/jobs/JOB-find-me-123"  # a prefix, trimmed
    assert lands_on(MEMBER) == f"/console/members/{MEMBER}"
    assert lands_on(USER) == f"/console/jobs?user_guid={USER}"


def test_search_lists_several_matches_and_says_when_there_are_none(
    client: FlaskClient, post_job: Callable[..., Any]
) -> None:
    post_job(guid="JOB-twin-a")
    post_job(guid="JOB-twin-b")

    several = page(client, "/console/search?q=JOB-twin")
    nothing = page(client, "/console/search?q=JOB-nobody")

    assert "/console/jobs/JOB-twin-a" in several and "/console/jobs/JOB-twin-b" in several
    assert 'id="no-matches"' in nothing


def test_jobs_list_filters_and_pages_by_keyset(
    client: FlaskClient, post_job: Callable[..., Any]
) -> None:
    for minute in range(5):
        post_job(guid=f"JOB-list-{minute}", status=9, updated_at=f"2026-12-01T11:0{minute}:00Z")
    post_job(guid="JOB-list-other", status=6)

    first = page(client, "/console/jobs?status=HALTED&limit=2&member_guid=")
    next_url = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_url is not None and "cursor=" in next_url.group(1)
    second = page(client, next_url.group(1))

    assert re.findall(r'data-job-guid="([^"]+)"', first) == ["JOB-list-4", "JOB-list-3"]
    assert re.findall(r'data-job-guid="([^"]+)"', second) == ["JOB-list-2", "JOB-list-1"]
    assert "status=HALTED" in next_url.group(1)  # the filters travel with the cursor
    assert '<option value="9" selected>' in first


def test_jobs_list_refuses_a_bad_filter_with_a_page(client: FlaskClient) -> None:
    response = client.get("/console/jobs?status=BOGUS", headers=login())

    assert response.status_code == 400
    assert "unknown status" in response.get_data(as_text=True)


def test_job_page_shows_state_timeline_payloads_and_runs(
    client: FlaskClient,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
) -> None:
    post_timeline(post_job, "JOB-detail-1", member_guid=MEMBER, error_message="<b>bad</b>")
    kill_runs(post_job, failing_worker(make_worker, sink), ["JOB-detail-2"])

    html = page(client, "/console/jobs/JOB-detail-1")
    dead = page(client, "/console/jobs/JOB-detail-2")

    timeline = html.split('id="timeline"')[1].split("</ol>")[0]
    assert [name for name in ("INITIATED", "CHALLENGED", "COMPLETED") if name in timeline] == [
        "INITIATED",
        "CHALLENGED",
        "COMPLETED",
    ]
    assert timeline.count("<details>") == 3 and '"guid": "JOB-detail-1"' in timeline
    assert f"{RECENTLY + timedelta(minutes=2):%Y-%m-%d %H:%M:%S} UTC" in html and " ago" in html
    assert "mfa_prompt" in html  # the CHALLENGED step's run
    assert 'data-run-state="dead"' in dead and "idempotency key" in dead
    assert "500" in dead  # the last error the receiver caused


def test_job_page_escapes_what_mx_sent(client: FlaskClient, post_job: Callable[..., Any]) -> None:
    post_job(guid="JOB-<script>", error_message="<b>boom</b>")

    raw = client.get("/console/jobs/JOB-<script>", headers=login()).get_data(as_text=True)

    assert "<script>" not in raw and "&lt;script&gt;" in raw
    assert "<b>boom</b>" not in raw


def test_unknown_job_is_a_404_page(client: FlaskClient) -> None:
    response = client.get("/console/jobs/JOB-none", headers=login())

    assert response.status_code == 404 and response.mimetype == "text/html"


def test_member_page_shows_connection_history_jobs_and_runs(
    client: FlaskClient, post_job: Callable[..., Any], ingest_headers: dict[str, str]
) -> None:
    post_timeline(post_job, "JOB-of-member", member_guid=MEMBER)
    for status in ("CHALLENGED", "DENIED"):
        body = {
            "action": "CHANGED",
            "type": "CONNECTION_STATUS",
            "connection_status": status,
            "member_guid": MEMBER,
            "user_guid": USER,
        }
        response = client.post("/webhooks/mx/connection-status", json=body, headers=ingest_headers)
        assert response.status_code == 204

    html = page(client, f"/console/members/{MEMBER}")

    assert "DENIED (2)" in html and "CHALLENGED (3)" in html
    assert 'data-job-guid="JOB-of-member"' in html
    assert "user_action_required" in html  # DENIED's run
    assert "connection status" in html


def test_member_known_only_from_its_jobs_has_a_page(
    client: FlaskClient, post_job: Callable[..., Any]
) -> None:
    post_job(guid="JOB-lonely", member_guid="MBR-jobs-only")

    html = page(client, "/console/members/MBR-jobs-only")

    assert "known from its jobs" in html and 'data-job-guid="JOB-lonely"' in html


def test_runs_filter_by_state_and_handler(
    client: FlaskClient,
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
) -> None:
    worker = failing_worker(make_worker, sink)
    kill_runs(post_job, worker, ["JOB-run-a", "JOB-run-b"])
    kill_runs(post_job, worker, ["JOB-run-c"], status=9)

    mfa = page(client, "/console/runs?state=dead&handler=mfa_prompt")
    alert = page(client, "/console/runs?state=dead&handler=alert")
    pending = page(client, "/console/runs?state=pending")

    assert mfa.count('data-run-state="dead"') == 2 and "JOB-run-c" not in mfa
    assert alert.count('data-run-state="dead"') == 1
    assert "No handler runs match." in pending
    assert 'id="retry-dead-link"' in mfa


def test_quarantine_lists_reason_and_field_errors(
    client: FlaskClient, ingest_headers: dict[str, str]
) -> None:
    response = client.post(
        "/webhooks/mx/jobs",
        json={"job": {"guid": "JOB-bad", "status": "x"}},
        headers=ingest_headers,
    )
    assert response.status_code == 422

    listing = page(client, "/console/quarantine")
    rejected_id = re.search(r'data-rejected-id="(\d+)"', listing)
    assert rejected_id is not None
    body = page(client, f"/console/quarantine/{rejected_id.group(1)}")

    assert "validation failed" in listing and "job.status" in listing
    assert '"JOB-bad"' in body and 'id="replay-edited"' in body and "<textarea" in body


def test_handlers_page_lists_every_handler(client: FlaskClient) -> None:
    html = page(client, "/console/handlers")

    for name in ("alert", "data_ready", "mfa_prompt", "user_action_required"):
        assert f'data-handler="{name}"' in html
