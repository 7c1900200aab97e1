"""Each request writes one access line, and a delivery's line says what the delivery did."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import basic_header, job_body
from flask.testing import FlaskClient

JOBS_URL = "/webhooks/mx/jobs"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        {"message": record.getMessage(), **getattr(record, "fields", {})}
        for record in caplog.records
        if record.name == "jobhooks.access"
    ]


def test_a_delivery_writes_one_line_with_its_outcome(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = job_body(guid="JOB-logged", status=2)
    response = client.post(JOBS_URL, json={"job": body}, headers=basic_header())

    assert response.status_code == 204
    assert len(caplog.records) == 1
    [line] = access_lines(caplog)
    assert line["method"] == "POST"
    assert line["path"] == JOBS_URL
    assert line["status"] == 204
    assert line["callback"] == "job"
    assert line["job_guid"] == "JOB-logged"
    assert line["member_guid"] == body["member_guid"]
    assert line["outcome"] == "accepted"
    assert line["handler_runs"] >= 1
    assert line["duration_ms"] >= 0


def test_a_refused_request_still_writes_its_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = client.post(JOBS_URL, json={"job": job_body()}, headers=basic_header("mx", "no"))

    assert response.status_code == 401
    [line] = access_lines(caplog)
    assert line["status"] == 401
    assert "job_guid" not in line
