"""POST /webhooks/mx/jobs served in front of Flask (service/webhooks/job_fast_path.py): an ordinary
delivery is stored, answered and logged exactly as the app would; anything else reaches the app."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from conftest import (
    SIGNING_SECRET,
    assert_error_shape,
    basic_header,
    job_body,
    refuse_every_commit,
)
from db_rows import count, rows
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from service.jobs.models import Job, JobEvent, JobStatusCount
from service.members.models import MemberPrompt
from service.outbox.models import HandlerRun
from service.platform.logs import JsonFormatter
from service.platform.models import Base
from service.webhooks.models import RejectedDelivery

JOBS_URL = "/webhooks/mx/jobs"
ANY_KIND_URL = "/webhooks/mx"
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
# The columns in which two deliveries differ by nature: row ids, arrival times, keys hashed from
# a guid. MX's own times (a job's created_at, updated_at) are compared.
ARRIVAL_COLUMNS: dict[type[Base], frozenset[str]] = {
    Job: frozenset({"current_event_id", "received_at", "first_received_at"}),
    JobEvent: frozenset({"id", "received_at", "dedup_key"}),
    HandlerRun: frozenset(
        {"id", "event_id", "idempotency_key", "due_at", "created_at", "updated_at"}
    ),
    MemberPrompt: frozenset({"last_prompted_at"}),
    JobStatusCount: frozenset(),
}
LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def served_by_flask(app: Flask) -> list[str]:
    """The paths of the requests that reached Flask's own request machinery."""
    paths: list[str] = []

    @app.before_request
    def note_flask_served() -> None:
        paths.append(request.path)

    return paths


@pytest.fixture
def log_lines(app: Flask) -> Iterator[LogLines]:
    """The JSON lines the process's log handler writes while the test runs.

    create_app configures that handler once per process, on the sys.stderr of that moment (under
    pytest, the capture file of whichever test came first), so capfd cannot see it: the test
    points the handler itself at a buffer, keeping its formatter and request-id filter.
    """
    [handler] = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler)
        and isinstance(handler.formatter, JsonFormatter)
    ]
    written = io.StringIO()
    previous = handler.stream
    handler.setStream(written)
    yield lambda: [orjson.loads(line) for line in written.getvalue().splitlines()]
    handler.setStream(previous)


@pytest.fixture
def commits_refused(app: Flask) -> None:
    refuse_every_commit(app)


def post_job(
    client: FlaskClient, url: str, body: bytes, headers: dict[str, str] | None = None
) -> TestResponse:
    all_headers = {**basic_header(), "Content-Type": "application/json", **(headers or {})}
    return client.post(url, data=body, headers=all_headers)


def without_request_id(headers: Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "X-Request-ID"}


def as_stored(
    engine: Engine, model: type[Base], guids: dict[str, str], **equal_to: Any
) -> list[dict[str, Any]]:
    """The rows of one delivery with what differs by nature left out and its guids named."""
    stored = [
        {
            column.name: getattr(row, column.name)
            for column in model.__table__.columns
            if column.name not in ARRIVAL_COLUMNS[model]
        }
        for row in rows(engine, model, **equal_to)
    ]
    text = orjson.dumps(stored, default=str).decode()
    for guid, name in guids.items():
        text = text.replace(guid, name)
    # In a stable order: a table without ids (status counts) comes back in any order.
    named: list[dict[str, Any]] = orjson.loads(text)
    return sorted(named, key=lambda row: orjson.dumps(row, option=orjson.OPT_SORT_KEYS))


def stored_delivery(engine: Engine, job: dict[str, Any]) -> dict[str, Any]:
    guids = {
        job["guid"]: "<job>",
        job["member_guid"]: "<member>",
        job["institution_guid"]: "<institution>",
    }
    return {
        "jobs": as_stored(engine, Job, guids, guid=job["guid"]),
        "job_events": as_stored(engine, JobEvent, guids, job_guid=job["guid"]),
        "handler_runs": as_stored(engine, HandlerRun, guids, job_guid=job["guid"]),
        "member_prompts": as_stored(engine, MemberPrompt, guids, member_guid=job["member_guid"]),
        "status_counts": as_stored(
            engine, JobStatusCount, guids, institution_key=job["institution_guid"]
        ),
    }


def test_a_delivery_served_in_front_of_flask_is_stored_as_the_app_stores_it(
    client: FlaskClient, engine: Engine, served_by_flask: list[str]
) -> None:
    # CHALLENGED: a handler run, a member prompt and status counts, besides the job and its event.
    fast = job_body(status=2, status_name="CHALLENGED", extra={"kept": [1, "two"]})
    slow = job_body(
        status=2,
        status_name="CHALLENGED",
        extra={"kept": [1, "two"]},
        guid="JOB-0b8e2f6c-1d1a-4c55-8e0e-0f3f7f1c9a01",
        member_guid="MBR-2d4c8a7e-5b1f-4e2a-9c3d-6e7f8a9b0c1d",
        institution_guid="INS-9e8d7c6b-5a4f-3e2d-1c0b-a9b8c7d6e5f4",
    )

    fast_answer = post_job(client, JOBS_URL, orjson.dumps({"job": fast}))
    slow_answer = post_job(client, ANY_KIND_URL, orjson.dumps({"job": slow}))

    assert served_by_flask == [ANY_KIND_URL]
    for answer in (fast_answer, slow_answer):
        assert answer.status_code == 204
        assert answer.get_data() == b""
        assert GENERATED_REQUEST_ID.match(answer.headers["X-Request-ID"])
    stored = stored_delivery(engine, fast)
    assert stored == stored_delivery(engine, slow)
    assert [run["handler"] for run in stored["handler_runs"]] == ["mfa_prompt"]
    assert stored["handler_runs"][0]["state"] == "pending"
    assert stored["job_events"][0]["payload"]["extra"] == {"kept": [1, "two"]}
    assert stored["jobs"][0]["status"] == 2
    assert stored["member_prompts"] and stored["status_counts"]


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("trace-7", True), (None, False), ("has spaces in it", False), ("t" * 129, False)],
    ids=["sane", "missing", "spaces", "too-long"],
)
def test_a_sane_request_id_is_echoed_and_any_other_is_replaced(
    client: FlaskClient, served_by_flask: list[str], sent: str | None, echoed: bool
) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}

    answer = post_job(client, JOBS_URL, orjson.dumps({"job": job_body()}), headers)

    assert answer.status_code == 204
    assert served_by_flask == []
    if echoed:
        assert answer.headers["X-Request-ID"] == sent
    else:
        assert GENERATED_REQUEST_ID.match(answer.headers["X-Request-ID"])


def test_a_body_shorter_than_its_content_length_is_refused_and_nothing_kept(
    client: FlaskClient, engine: Engine, served_by_flask: list[str]
) -> None:
    body = orjson.dumps({"job": job_body()})

    answer = client.post(
        JOBS_URL,
        data=body,
        headers={**basic_header(), "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": str(len(body) + 100)},
    )

    assert_error_shape(answer, 400, "unreadable_body")
    assert served_by_flask == []
    assert GENERATED_REQUEST_ID.match(answer.headers["X-Request-ID"])
    for model in (Job, JobEvent, HandlerRun, RejectedDelivery):
        assert count(engine, model) == 0, model.__name__


def test_an_invalid_job_is_answered_and_quarantined_by_the_app_with_its_exact_bytes(
    client: FlaskClient, engine: Engine, served_by_flask: list[str]
) -> None:
    # Odd spacing and key order: what is kept must be the bytes sent, not a re-encoding.
    body = b'{ "job" : {"status": "two",  "guid": "JOB-invalid"} }\n'

    answer = post_job(client, JOBS_URL, body, {"X-Request-ID": "trace-422"})

    details = assert_error_shape(answer, 422, "validation_failed")
    assert "status" in [detail["field"].rsplit(".", 1)[-1] for detail in details]
    assert answer.headers["X-Request-ID"] == "trace-422"
    assert served_by_flask == [JOBS_URL]
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.body == body
    assert rejected.endpoint == "jobs"
    assert rejected.status_code == 422
    assert rejected.reason == "validation_failed"
    assert rejected.body_truncated is False
    assert count(engine, JobEvent) == 0


@pytest.mark.usefixtures("commits_refused")
def test_a_failed_commit_gets_the_apps_503_and_its_log_lines_carry_the_request_id(
    client: FlaskClient, engine: Engine, served_by_flask: list[str], log_lines: LogLines
) -> None:
    body = orjson.dumps({"job": job_body()})

    fast = post_job(client, JOBS_URL, body, {"X-Request-ID": "trace-fast-503"})
    logging.getLogger("jobhooks.test").info("between the requests")
    slow = post_job(client, ANY_KIND_URL, body, {"X-Request-ID": "trace-app-503"})

    assert served_by_flask == [ANY_KIND_URL]
    assert_error_shape(fast, 503, "unavailable")
    assert fast.get_json() == slow.get_json()
    assert fast.headers["X-Request-ID"] == "trace-fast-503"
    assert without_request_id(fast.headers) == without_request_id(slow.headers)
    assert "Retry-After" in fast.headers
    for model in (Job, JobEvent, HandlerRun, RejectedDelivery):
        assert count(engine, model) == 0, model.__name__
    lines = log_lines()
    database_errors = [
        line.get("request_id") for line in lines if line["message"] == "database error"
    ]
    assert database_errors == ["trace-fast-503", "trace-app-503"]
    access = [
        (line.get("request_id"), line["status"], line["path"])
        for line in lines
        if line["logger"] == "jobhooks.access"
    ]
    assert access == [("trace-fast-503", 503, JOBS_URL), ("trace-app-503", 503, ANY_KIND_URL)]
    [between] = [line for line in lines if line["message"] == "between the requests"]
    assert "request_id" not in between


def test_a_signed_delivery_with_basic_credentials_is_left_to_the_app(
    client: FlaskClient, engine: Engine, served_by_flask: list[str]
) -> None:
    body = orjson.dumps({"job": job_body()})
    now = datetime.now(UTC)
    signature = {
        "webhook-id": "msg_signed_and_basic",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SIGNING_SECRET).sign(
            "msg_signed_and_basic", now, body.decode()
        ),
    }

    answer = post_job(client, JOBS_URL, body, signature)

    assert answer.status_code == 204
    assert served_by_flask == [JOBS_URL]
    # Only the app verifies a signature, and only a verified one names the delivery.
    [event] = rows(engine, JobEvent)
    assert event.delivery_id == "msg_signed_and_basic"


def test_a_chunked_delivery_without_content_length_is_left_to_the_app(
    client: FlaskClient, engine: Engine, served_by_flask: list[str]
) -> None:
    job = job_body()
    environ = EnvironBuilder(
        path=JOBS_URL,
        method="POST",
        data=orjson.dumps({"job": job}),
        headers=[
            *basic_header().items(),
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
    ).get_environ()
    # As gunicorn passes a chunked body: decoded, ended by the server, with no length.
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True

    answer = client.open(Request(environ))

    assert answer.status_code == 204
    assert served_by_flask == [JOBS_URL]
    [stored] = rows(engine, Job)
    assert stored.guid == job["guid"]


def test_a_content_length_of_non_ascii_digits_is_left_to_the_app(
    client: FlaskClient, engine: Engine, served_by_flask: list[str]
) -> None:
    # WSGI decodes headers as Latin-1: a byte 0xB2 arrives as "²", which str.isdigit accepts
    # and int() refuses. Whatever the app answers, it must be an answer, not a crash.
    answer = client.post(
        JOBS_URL,
        data=orjson.dumps({"job": job_body()}),
        headers={**basic_header(), "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": "\u00b2"},
    )

    assert served_by_flask == [JOBS_URL]
    assert 400 <= answer.status_code < 500
    assert answer.is_json
    assert count(engine, JobEvent) == 0
