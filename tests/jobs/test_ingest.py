"""The ingest rules of POST /webhooks/mx/jobs, each on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from conftest import (
    BASIC_PASSWORD,
    BASIC_USER,
    SIGNING_SECRET,
    assert_error_shape,
    basic_header,
    bearer_header,
    job_body,
    refuse_every_commit,
)
from db_rows import count, rows
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook
from werkzeug.test import TestResponse

from service.jobs.models import Job, JobEvent
from service.outbox.models import HandlerRun
from service.webhooks.models import RejectedDelivery

JOBS_URL = "/webhooks/mx/jobs"
GUID = job_body()["guid"]
PostJob = Callable[..., TestResponse]


def post_raw(
    client: FlaskClient,
    data: bytes,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    all_headers = dict(basic_header() if headers is None else headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return client.post(JOBS_URL, data=data, headers=all_headers)


# Rule 1: authentication comes first.


def test_missing_credentials_are_refused_with_basic_challenge(client: FlaskClient) -> None:
    response = client.post(JOBS_URL, json={"job": job_body()})

    assert_error_shape(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "authorization",
    [
        basic_header(BASIC_USER, "wrong-password")["Authorization"],
        basic_header("someone-else", BASIC_PASSWORD)["Authorization"],
        basic_header(BASIC_USER, "rotated-out-soon")["Authorization"],  # pairs do not mix
        "Basic not-base64!!",
        "Basic ",
        "Bearer test-api-token",  # an API token is not a webhook credential
        "Digest username=mx",
    ],
)
def test_wrong_credentials_are_refused_with_basic_challenge(
    client: FlaskClient, engine: Engine, authorization: str
) -> None:
    response = client.post(
        JOBS_URL, json={"job": job_body()}, headers={"Authorization": authorization}
    )

    assert_error_shape(response, 401, "unauthorized")
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert count(engine, JobEvent) == 0


def test_credentials_never_reach_the_logs(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = basic_header(BASIC_USER, "wrong-password-4711")
    client.post(JOBS_URL, json={"job": job_body()}, headers=wrong)
    client.post(JOBS_URL, json={"job": {"status": "x"}}, headers=basic_header())
    client.post(JOBS_URL, json={"job": job_body()}, headers=basic_header())

    logged = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert caplog.records
    for secret in ("wrong-password-4711", BASIC_PASSWORD, wrong["Authorization"].split()[1]):
        assert secret not in logged


@pytest.mark.parametrize(
    ("user", "password"), [(BASIC_USER, BASIC_PASSWORD), ("mx-old", "rotated-out-soon")]
)
def test_every_configured_basic_pair_is_accepted_during_rotation(
    client: FlaskClient, engine: Engine, user: str, password: str
) -> None:
    response = client.post(JOBS_URL, json={"job": job_body()}, headers=basic_header(user, password))

    assert response.status_code == 204
    assert count(engine, JobEvent) == 1


def test_standard_webhooks_signature_authenticates_without_basic(
    client: FlaskClient, engine: Engine
) -> None:
    body = orjson.dumps({"job": job_body()})
    signed_at = datetime.now(UTC)
    signature = Webhook(SIGNING_SECRET).sign("msg_signed_1", signed_at, body.decode())
    headers = {
        "webhook-id": "msg_signed_1",
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signature,
    }

    response = post_raw(client, body, headers=headers)

    assert response.status_code == 204
    assert count(engine, JobEvent, delivery_id="msg_signed_1") == 1


def test_signature_over_a_different_body_is_refused(client: FlaskClient, engine: Engine) -> None:
    signed_at = datetime.now(UTC)
    signature = Webhook(SIGNING_SECRET).sign("msg_x", signed_at, '{"job": {}}')
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signature,
    }

    response = post_raw(client, orjson.dumps({"job": job_body()}), headers=headers)

    assert_error_shape(response, 401, "unauthorized")
    assert count(engine, JobEvent) == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (orjson.dumps({"job": {"status": "x"}}), "application/json"),
        (orjson.dumps({"job": job_body()}), "text/plain"),
        (b"x" * (70 * 1024), "application/json"),
    ],
    ids=["malformed", "invalid", "wrong-type", "too-large"],
)
def test_unauthenticated_bad_body_is_refused_before_reading_and_not_quarantined(
    client: FlaskClient, engine: Engine, data: bytes, content_type: str
) -> None:
    response = post_raw(client, data, content_type=content_type, headers={})

    assert_error_shape(response, 401, "unauthorized")
    assert count(engine, RejectedDelivery) == 0


# Rule 2 and 4: size, media type and syntax, each quarantined once authenticated.


def test_body_over_limit_is_413_and_quarantined_truncated(
    client: FlaskClient, engine: Engine
) -> None:
    data = orjson.dumps({"job": job_body(error_message="x" * (65 * 1024))})

    response = post_raw(client, data)

    assert_error_shape(response, 413, "payload_too_large")
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.status_code, rejected.reason) == (413, "payload_too_large")
    assert rejected.body_truncated is True
    assert rejected.body == data[: 64 * 1024]
    assert count(engine, JobEvent) == 0


def test_body_exactly_at_limit_is_not_too_large(client: FlaskClient, engine: Engine) -> None:
    data = orjson.dumps({"job": job_body()})
    data = data + b" " * (64 * 1024 - len(data))

    response = post_raw(client, data)

    assert response.status_code == 204
    assert count(engine, RejectedDelivery) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "", "application/xml"]
)
def test_non_json_content_type_is_415_and_quarantined(
    client: FlaskClient, engine: Engine, content_type: str
) -> None:
    data = orjson.dumps({"job": job_body()})

    response = post_raw(client, data, content_type=content_type or None)

    assert_error_shape(response, 415, "unsupported_media_type")
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.status_code, rejected.reason, rejected.body) == (
        415,
        "unsupported_media_type",
        data,
    )
    assert count(engine, JobEvent) == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/vnd.mx.job+json"],
)
def test_json_content_type_variants_are_accepted(client: FlaskClient, content_type: str) -> None:
    response = post_raw(client, orjson.dumps({"job": job_body()}), content_type=content_type)

    assert response.status_code == 204


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"{", b'{"job": }', b"NaN", b'{"a": Infinity}', b"\xff\xfe", b"[1,]"],
    ids=["empty", "blank", "open", "no-value", "nan", "infinity", "not-utf8", "trailing-comma"],
)
def test_unparseable_json_is_400_and_quarantined(
    client: FlaskClient, engine: Engine, data: bytes
) -> None:
    response = post_raw(client, data)

    assert_error_shape(response, 400, "malformed_json")
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.status_code, rejected.reason, rejected.body) == (400, "malformed_json", data)
    assert rejected.endpoint == "jobs"


def test_nesting_too_deep_to_store_is_400_not_a_crash(client: FlaskClient, engine: Engine) -> None:
    data = b'{"job": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    response = post_raw(client, data)

    assert_error_shape(response, 400, "malformed_json")
    assert count(engine, RejectedDelivery) == 1


# Rule 3: schema violations, one detail per bad field.


def test_schema_violations_are_422_with_one_detail_per_bad_field(
    post_job: PostJob, engine: Engine
) -> None:
    bad_job = {
        "status": "two",
        "updated_at": "yesterday",
        "is_authenticated": "yes",
        "member_guid": 12,
    }

    response = post_job(bad_job)

    details = assert_error_shape(response, 422, "validation_failed")
    fields = [detail["field"] for detail in details]
    assert sorted(fields) == sorted(
        ["job.guid", "job.status", "job.updated_at", "job.is_authenticated", "job.member_guid"]
    )
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.status_code, rejected.reason) == (422, "validation_failed")
    assert sorted(problem["field"] for problem in rejected.details or []) == sorted(fields)
    assert orjson.loads(rejected.body or b"") == {"job": bad_job}
    assert count(engine, JobEvent) == 0


@pytest.mark.parametrize(
    ("overrides", "bad_field"),
    [
        ({"guid": None}, "guid"),
        ({"guid": ""}, "guid"),
        ({"status": None}, "status"),
        ({"status": 2.0}, "status"),
        ({"status": True}, "status"),
        ({"status": "2"}, "status"),
        ({"status": -1}, "status"),
        ({"status": 2**31}, "status"),
        ({"updated_at": 1764064830}, "updated_at"),
        ({"created_at": "25/11/2026 10:00"}, "created_at"),
        ({"finished_at": "2026-13-01T00:00:00Z"}, "finished_at"),
        ({"started_at": "9999-12-31T23:59:59-01:00"}, "started_at"),
        ({"is_authenticated": 1}, "is_authenticated"),
        ({"guid": "J" * 256}, "guid"),
        ({"error_message": ["a"]}, "error_message"),
    ],
)
def test_single_bad_field_is_named_in_the_422(
    post_job: PostJob, engine: Engine, overrides: dict[str, Any], bad_field: str
) -> None:
    response = post_job(job_body(**overrides), wrap=False)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == [bad_field]
    assert count(engine, RejectedDelivery) == 1
    assert count(engine, Job) == 0


@pytest.mark.parametrize("body", [[], "job", 6, None, {"job": None}, {"job": [job_body()]}])
def test_body_that_is_not_a_job_object_is_422(client: FlaskClient, body: Any) -> None:
    response = post_raw(client, orjson.dumps(body))

    details = assert_error_shape(response, 422, "validation_failed")
    assert len(details) == 1


def test_nul_character_anywhere_is_422_not_a_database_error(
    post_job: PostJob, engine: Engine
) -> None:
    response = post_job(job_body(error_message="bad\x00byte", extra={"k\x00ey": 1}))

    details = assert_error_shape(response, 422, "validation_failed")
    assert len(details) == 1
    assert count(engine, RejectedDelivery) == 1
    assert count(engine, JobEvent) == 0


def test_overlong_webhook_id_is_422_and_quarantined(client: FlaskClient, engine: Engine) -> None:
    headers = {**basic_header(), "webhook-id": "m" * 300}

    response = post_raw(client, orjson.dumps({"job": job_body()}), headers=headers)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == ["webhook-id"]
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.delivery_id == "m" * 255


def test_webhook_id_with_a_nul_is_422_and_quarantined(client: FlaskClient, engine: Engine) -> None:
    headers = {**basic_header(), "webhook-id": "msg\x00x"}

    response = post_raw(client, orjson.dumps({"job": job_body()}), headers=headers)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == ["webhook-id"]
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.delivery_id == "msg\\u0000x"
    assert count(engine, JobEvent) == 0


def test_content_type_with_a_nul_is_415_and_quarantined(
    client: FlaskClient, engine: Engine
) -> None:
    response = post_raw(client, orjson.dumps({"job": job_body()}), content_type="text/\x00plain")

    assert_error_shape(response, 415, "unsupported_media_type")
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.content_type == "text/\\u0000plain"


# Bare or wrapped, unknown fields, nulls, future statuses, time zones.


@pytest.mark.parametrize("wrap", [True, False], ids=["wrapped", "bare"])
def test_bare_and_wrapped_job_objects_are_both_accepted(
    post_job: PostJob, engine: Engine, wrap: bool
) -> None:
    response = post_job(job_body(), wrap=wrap)

    assert response.status_code == 204
    assert response.get_data() == b""
    [job] = rows(engine, Job)
    assert (job.guid, job.status, job.status_name) == (GUID, 6, "COMPLETED")
    [event] = rows(engine, JobEvent)
    assert event.payload == job_body()


def test_unknown_fields_are_kept_in_the_raw_payload(
    post_job: PostJob, engine: Engine, client: FlaskClient, api_headers: dict[str, str]
) -> None:
    novel = {"connection_status": "CONNECTED", "nested": {"list": [1, 2.5, None, "x"]}}
    response = post_job(job_body(**novel))

    assert response.status_code == 204
    [event] = rows(engine, JobEvent)
    assert event.payload == job_body(**novel)
    history = client.get(f"/jobs/{GUID}", headers=api_headers).get_json()["history"]
    assert history[0]["payload"]["nested"] == novel["nested"]


def test_nulls_in_every_optional_field_are_accepted(post_job: PostJob, engine: Engine) -> None:
    optional = [
        *("member_guid", "user_guid", "institution_guid", "status_name", "is_authenticated"),
        *("error_message", "created_at", "started_at", "updated_at", "finished_at"),
    ]
    response = post_job(job_body(**dict.fromkeys(optional)))

    assert response.status_code == 204
    [job] = rows(engine, Job)
    assert job.status == 6
    assert all(getattr(job, name) is None for name in optional if name != "status_name")


def test_guid_and_status_alone_are_enough(post_job: PostJob, engine: Engine) -> None:
    response = post_job({"guid": "JOB-minimal", "status": 3})

    assert response.status_code == 204
    assert count(engine, Job, guid="JOB-minimal", status=3) == 1


def test_unknown_future_status_is_stored_with_its_name_and_runs_no_handler(
    post_job: PostJob, engine: Engine
) -> None:
    response = post_job(job_body(status=42, status_name="RECONNECTING"))

    assert response.status_code == 204
    [event] = rows(engine, JobEvent)
    assert (event.status, event.status_name) == (42, "RECONNECTING")
    [job] = rows(engine, Job)
    assert (job.status, job.status_name) == (42, "RECONNECTING")
    assert count(engine, HandlerRun) == 0


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("2026-11-25T05:00:30-05:00", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25T15:30:30+05:30", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-26T00:00:30.250+14:00", datetime(2026, 11, 25, 10, 0, 30, 250000, tzinfo=UTC)),
        ("2026-11-25T10:00:30Z", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25T10:00:30", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
    ],
)
def test_timestamps_with_any_offset_are_stored_and_served_in_utc(
    post_job: PostJob,
    engine: Engine,
    client: FlaskClient,
    api_headers: dict[str, str],
    sent: str,
    utc: datetime,
) -> None:
    response = post_job(job_body(updated_at=sent, created_at=sent))

    assert response.status_code == 204
    [job] = rows(engine, Job)
    assert job.updated_at == utc and job.created_at == utc
    [event] = rows(engine, JobEvent)
    assert event.updated_at == utc
    assert event.payload is not None and event.payload["updated_at"] == sent  # raw stays raw
    served = client.get(f"/jobs/{GUID}", headers=api_headers).get_json()
    expected = utc.isoformat().replace("+00:00", "Z")
    assert served["job"]["updated_at"] == expected
    assert served["history"][0]["updated_at"] == expected
    assert served["job"]["received_at"].endswith("Z")


# Rule 5: duplicates answer 204 and add nothing.


def test_duplicate_delivery_adds_no_history(post_job: PostJob, engine: Engine) -> None:
    first = post_job(job_body(status=2, status_name="CHALLENGED"))
    again = post_job(job_body(status=2, status_name="CHALLENGED"))
    bare_again = post_job(job_body(status=2, status_name="CHALLENGED"), wrap=False)

    assert [first.status_code, again.status_code, bare_again.status_code] == [204, 204, 204]
    assert count(engine, JobEvent) == 1
    assert count(engine, HandlerRun) == 1


def test_same_instant_in_another_offset_is_the_same_delivery(
    post_job: PostJob, engine: Engine
) -> None:
    post_job(job_body(updated_at="2026-11-25T10:00:30Z"))
    response = post_job(job_body(updated_at="2026-11-25T11:00:30+01:00"))

    assert response.status_code == 204
    assert count(engine, JobEvent) == 1
    assert count(engine, HandlerRun) == 1


def test_an_unsigned_webhook_id_never_drops_a_different_body(
    client: FlaskClient, engine: Engine
) -> None:
    # Over Basic auth anyone can repeat an id: only the body can make a delivery a repeat.
    headers = {**basic_header(), "webhook-id": "msg_2f9c"}
    first = client.post(JOBS_URL, json={"job": job_body(status=9)}, headers=headers)
    same = client.post(JOBS_URL, json={"job": job_body(status=9)}, headers=headers)
    different = client.post(
        JOBS_URL,
        json={"job": job_body(status=9, updated_at="2026-11-25T10:05:00Z")},
        headers=headers,
    )

    assert (first.status_code, same.status_code, different.status_code) == (204, 204, 204)
    events = rows(engine, JobEvent)
    assert len(events) == 2
    assert {event.delivery_id for event in events} == {None}


def test_new_status_change_of_same_job_is_not_a_duplicate(
    post_job: PostJob, engine: Engine
) -> None:
    post_job(job_body(status=1, updated_at="2026-11-25T10:00:01Z"))
    post_job(job_body(status=2, updated_at="2026-11-25T10:00:02Z"))
    post_job(job_body(status=6, updated_at="2026-11-25T10:00:03Z"))

    assert count(engine, JobEvent, job_guid=GUID) == 3
    assert [run.handler for run in rows(engine, HandlerRun)] == ["mfa_prompt", "data_ready"]


# Rule 6: out-of-order events go to history without becoming current.


def test_older_event_arriving_late_is_history_not_current_and_runs_no_handler(
    post_job: PostJob, engine: Engine, client: FlaskClient, api_headers: dict[str, str]
) -> None:
    newer = post_job(job_body(status=6, updated_at="2026-11-25T10:00:30Z"))
    late = post_job(job_body(status=2, status_name="CHALLENGED", updated_at="2026-11-25T10:00:10Z"))

    assert (newer.status_code, late.status_code) == (204, 204)
    [job] = rows(engine, Job)
    assert job.status == 6
    assert job.updated_at == datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)
    assert count(engine, JobEvent) == 2
    assert [run.handler for run in rows(engine, HandlerRun)] == ["data_ready"]
    detail = client.get(f"/jobs/{GUID}", headers=api_headers).get_json()
    assert [(e["status"], e["current"]) for e in detail["history"]] == [(2, False), (6, True)]
    assert detail["job"]["status"] == 6


def test_current_state_follows_latest_updated_at_whatever_the_arrival_order(
    post_job: PostJob, engine: Engine
) -> None:
    for status, minute in [(3, 3), (0, 0), (5, 5), (1, 1), (4, 4)]:
        assert (
            post_job(job_body(status=status, updated_at=f"2026-11-25T10:0{minute}:00Z")).status_code
            == 204
        )

    [job] = rows(engine, Job)
    assert job.status == 5
    [current] = rows(engine, JobEvent, id=job.current_event_id)
    assert current.status == 5
    assert count(engine, JobEvent) == 5


def test_late_event_without_updated_at_does_not_replace_a_dated_state(
    post_job: PostJob, engine: Engine
) -> None:
    post_job(job_body(status=6, updated_at="2026-11-25T10:00:30Z"))
    response = post_job(job_body(status=9, updated_at=None))

    assert response.status_code == 204
    assert rows(engine, Job)[0].status == 6
    assert count(engine, HandlerRun, handler="alert") == 0
    assert count(engine, JobEvent) == 2


def test_newer_event_without_owner_fields_keeps_the_known_owners(
    post_job: PostJob, engine: Engine
) -> None:
    post_job(job_body(status=1, updated_at="2026-11-25T10:00:01Z"))
    post_job({"guid": GUID, "status": 3, "updated_at": "2026-11-25T10:00:05Z"})

    [job] = rows(engine, Job)
    assert job.status == 3
    assert job.member_guid == job_body()["member_guid"]


# Rule 7: event, current state and handler runs in one transaction, committed before the 204.


@pytest.mark.parametrize(
    ("status", "handlers"),
    [
        (0, []),
        (1, []),
        (2, ["mfa_prompt"]),
        (3, []),
        (4, []),
        (5, []),
        (6, ["data_ready"]),
        (7, ["user_action_required"]),
        (8, ["user_action_required"]),
        (9, ["alert"]),
    ],
)
def test_each_status_queues_its_handler_runs_with_the_event(
    post_job: PostJob, engine: Engine, status: int, handlers: list[str]
) -> None:
    response = post_job(job_body(status=status, status_name=None))

    assert response.status_code == 204
    [event] = rows(engine, JobEvent)
    runs = rows(engine, HandlerRun)
    assert [run.handler for run in runs] == handlers
    for run in runs:
        assert (run.event_id, run.job_guid, run.state, run.attempts) == (
            event.id,
            GUID,
            "pending",
            0,
        )
        assert run.idempotency_key
    [job] = rows(engine, Job)
    assert job.current_event_id == event.id


def test_handler_runs_carry_distinct_idempotency_keys(post_job: PostJob, engine: Engine) -> None:
    post_job(job_body(guid="JOB-a", status=2))
    post_job(job_body(guid="JOB-b", status=2))

    keys = {run.idempotency_key for run in rows(engine, HandlerRun)}
    assert len(keys) == 2


def test_event_is_not_kept_when_its_handler_runs_cannot_be_written(
    app: Flask, client: FlaskClient, engine: Engine
) -> None:
    refuse_every_commit(app)

    response = client.post(JOBS_URL, json={"job": job_body()}, headers=basic_header())

    assert_error_shape(response, 503, "unavailable")
    assert "Retry-After" in response.headers
    assert count(engine, JobEvent) == 0
    assert count(engine, Job) == 0
    assert count(engine, HandlerRun) == 0


# The query side MX's callbacks feed: GET /jobs/<guid>.


def test_job_detail_needs_a_bearer_token(client: FlaskClient, post_job: PostJob) -> None:
    post_job()

    for headers in ({}, bearer_header("not-a-token"), basic_header(), {"Authorization": "Bearer"}):
        response = client.get(f"/jobs/{GUID}", headers=headers)
        assert_error_shape(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_job_detail_accepts_every_configured_token(client: FlaskClient, post_job: PostJob) -> None:
    post_job()

    for token in ("test-api-token", "second-token"):
        assert client.get(f"/jobs/{GUID}", headers=bearer_header(token)).status_code == 200


def test_unknown_job_is_404_json(client: FlaskClient, api_headers: dict[str, str]) -> None:
    response = client.get("/jobs/JOB-does-not-exist", headers=api_headers)

    assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize("guid", ["JOB%00x", "J" * 5000, "%F0%9F%98%80", "%ff%fe"])
def test_unsearchable_job_guid_is_a_client_error(
    client: FlaskClient, api_headers: dict[str, str], guid: str
) -> None:
    response = client.get(f"/jobs/{guid}", headers=api_headers)

    assert response.status_code in (400, 404)
    assert_error_shape(response, response.status_code)


def test_job_detail_shows_current_state_history_and_handler_runs(
    post_job: PostJob, client: FlaskClient, api_headers: dict[str, str]
) -> None:
    post_job(job_body(status=2, status_name="CHALLENGED", updated_at="2026-11-25T10:00:10Z"))
    post_job(job_body(status=6, updated_at="2026-11-25T10:00:30Z"))

    response = client.get(f"/jobs/{GUID}", headers=api_headers)

    assert response.status_code == 200
    document = response.get_json()
    assert set(document) == {"job", "history", "handler_runs"}
    assert document["job"]["guid"] == GUID and document["job"]["status"] == 6
    assert [event["current"] for event in document["history"]] == [False, True]
    for event in document["history"]:
        assert {
            "id",
            "status",
            "status_name",
            "updated_at",
            "received_at",
            "current",
            "payload",
        } <= set(event)
    assert [run["handler"] for run in document["handler_runs"]] == ["mfa_prompt", "data_ready"]


# Probes and the error shape outside the webhook.


def test_healthz_and_readyz_answer_200_when_the_database_is_up(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", JOBS_URL, 405), ("PUT", JOBS_URL, 405), ("GET", "/no-such-page", 404)],
)
def test_unrouted_requests_get_the_json_error_shape(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method, headers=basic_header())

    assert_error_shape(response, status)


def test_id_past_the_database_range_names_no_run_on_both_databases(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    # Neither PostgreSQL (DataError) nor SQLite's driver (OverflowError) may turn it into a 5xx.
    response = client.post(f"/handler-runs/{2**70}/retry", headers=api_headers)

    assert_error_shape(response, 404, "not_found")
