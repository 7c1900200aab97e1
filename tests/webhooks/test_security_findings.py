"""Findings of a hands-on penetration test, each reproduced, on both databases where stored."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest
from conftest import SIGNING_SECRET, Sink, basic_header, drain, job_body
from db_rows import count
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from service.config import ConfigError, Settings
from service.jobs.models import JobEvent
from service.outbox.worker import Worker
from service.platform.logs import JsonFormatter


def test_notifications_are_never_signed_with_an_inbound_secret(
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
    client: FlaskClient,
) -> None:
    # WEBHOOK_SIGNING_SECRETS is set (conftest) and NOTIFY_SIGNING_SECRET is not.
    worker = make_worker(notify_url=sink.url, notify_signing_secret=None)
    assert post_job(job_body(status=2, status_name="CHALLENGED")).status_code == 204
    assert drain(worker) == 1
    [notification] = sink.requests

    assert "webhook-signature" not in notification.headers
    replayed = client.post(
        "/webhooks/mx/jobs",
        data=notification.body,
        headers={
            "Content-Type": "application/json",
            **{k: v for k, v in notification.headers.items() if k.startswith("webhook-")},
        },
    )
    assert replayed.status_code == 401


@pytest.mark.parametrize("from_environment", [True, False])
def test_a_notify_secret_that_is_also_an_inbound_secret_refuses_to_start(
    from_environment: bool,
) -> None:
    with pytest.raises(ConfigError, match="NOTIFY_SIGNING_SECRET"):
        if from_environment:
            Settings.from_env(
                {"WEBHOOK_SIGNING_SECRETS": SIGNING_SECRET, "NOTIFY_SIGNING_SECRET": SIGNING_SECRET}
            )
        else:
            Settings(signing_secrets=(SIGNING_SECRET,), notify_signing_secret=SIGNING_SECRET)


def test_alert_text_is_escaped_so_slack_shows_it_as_text(
    post_job: Callable[..., Any],
    make_worker: Callable[..., Worker],
    sink: Sink,
) -> None:
    worker = make_worker(alert_url=sink.url)
    body = job_body(
        guid="JOB-<!channel>",
        status=9,
        status_name="HALTED",
        error_message="<!here> see <https://phish.example|your bank> & retry",
    )
    assert post_job(body).status_code == 204
    assert drain(worker) == 1

    text = sink.requests[0].json()["text"]
    assert "<" not in text and ">" not in text
    assert "JOB-&lt;!channel&gt;" in text
    assert "&lt;!here&gt; see &lt;https://phish.example|your bank&gt; &amp; retry" in text


def test_requests_a_client_invents_cannot_grow_the_metrics(client: FlaskClient) -> None:
    def series() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        text = client.get("/metrics").get_data(as_text=True)
        return {
            (sample.name, tuple(sorted(sample.labels.items())))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    for index in range(5):
        client.open(f"/made-up/{index}", method=f"BREW{index}")
        client.open("/webhooks/mx/jobs", method=f"PROPFIND{index}")
    series()  # the scrape itself is a request, timed once it has answered
    before = series()
    for index in range(5, 60):
        client.open(f"/made-up/{index}", method=f"BREW{index}")
        client.open("/webhooks/mx/jobs", method=f"PROPFIND{index}")

    assert series() == before
    methods = {dict(labels)["method"] for _, labels in before if "method" in dict(labels)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_different_jobs_under_one_unsigned_webhook_id_are_all_stored(
    client: FlaskClient, engine: Any
) -> None:
    headers = {**basic_header(), "webhook-id": "msg_same_for_all"}
    for index in range(50):
        body = {"job": job_body(guid=f"JOB-same-id-{index}")}
        assert client.post("/webhooks/mx/jobs", json=body, headers=headers).status_code == 204

    assert count(engine, JobEvent) == 50


def test_a_doubled_slash_is_a_json_404_not_a_redirect_to_the_host_header(
    client: FlaskClient,
) -> None:
    response = client.post(
        "/webhooks//mx/jobs", json={"job": job_body()}, headers={"Host": "evil.example"}
    )

    assert response.status_code == 404
    assert "Location" not in response.headers
    assert response.get_json()["error"] == "not_found"


def test_log_lines_escape_unicode_line_breaks() -> None:
    record = logging.LogRecord("jobhooks.test", logging.INFO, "", 0, "m", None, None)
    record.__dict__["fields"] = {"value": "a\u2028b\u0085c\u2029d"}

    line = JsonFormatter().format(record)

    assert "\u2028" not in line and "\u0085" not in line and "\u2029" not in line
    assert "\\u2028" in line


def test_the_quarantine_list_stays_small_and_each_body_has_its_own_url(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    body = b"{" + b"x" * 60_000  # not JSON: quarantined whole
    headers = {**basic_header(), "Content-Type": "application/json"}
    for _ in range(6):
        assert client.post("/webhooks/mx/jobs", data=body, headers=headers).status_code == 400

    listed = client.get("/rejected-deliveries?limit=500", headers=api_headers)
    documents = listed.json["rejected_deliveries"]

    assert len(listed.get_data()) < 600_000
    assert [d["body_size"] for d in documents] == [len(body)] * 6
    assert [d["body_omitted"] for d in documents] == [False] * 3 + [True] * 3
    omitted = documents[-1]
    assert omitted["body_base64"] is None
    one = client.get(f"/rejected-deliveries/{omitted['id']}", headers=api_headers)
    assert one.status_code == 200
    assert base64.b64decode(one.json["body_base64"]) == body
    assert client.get("/rejected-deliveries/999999", headers=api_headers).status_code == 404
