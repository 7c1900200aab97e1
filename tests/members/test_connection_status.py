"""POST /webhooks/mx/connection-status on a real SQLite file and a real PostgreSQL: validation,
history and current state, duplicates, out-of-order arrival, and what each status stores."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from conftest import SIGNING_SECRET, app_state, assert_error_shape, basic_header, job_body
from db_rows import count, rows
from flask import Flask
from flask.testing import FlaskClient
from mx_bodies import MEMBER, URL, USER, status_body
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook
from werkzeug.test import TestResponse

from service.app import create_app
from service.config import Settings
from service.members.models import Member, MemberEvent
from service.members.statuses import CONNECTION_STATUSES
from service.webhooks.models import RejectedDelivery

PostStatus = Callable[..., TestResponse]


@pytest.fixture
def post_status(client: FlaskClient, ingest_headers: dict[str, str]) -> PostStatus:
    def post(
        body: dict[str, Any] | None = None, *, delivery_id: str | None = None, **kw: Any
    ) -> Any:
        headers = dict(ingest_headers)
        if delivery_id is not None:
            headers["webhook-id"] = delivery_id
        return client.post(
            URL, json=body if body is not None else status_body(**kw), headers=headers
        )

    return post


def signed_headers(body: bytes, delivery_id: str, signed_at: datetime) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": Webhook(SIGNING_SECRET).sign(delivery_id, signed_at, body.decode()),
    }


# Authentication, validation and quarantine: the jobs endpoint's rules.


def test_missing_credentials_are_refused(client: FlaskClient, engine: Engine) -> None:
    response = client.post(URL, json=status_body())

    assert_error_shape(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert count(engine, MemberEvent) == 0


def test_documented_body_is_stored_as_history_and_current_state(
    post_status: PostStatus, engine: Engine
) -> None:
    response = post_status()

    assert response.status_code == 204
    assert response.get_data() == b""
    [event] = rows(engine, MemberEvent)
    assert (event.member_guid, event.user_guid) == (MEMBER, USER)
    assert (event.connection_status_id, event.connection_status) == (3, "CHALLENGED")
    assert event.payload == status_body()
    assert event.event_at_source == "received"
    assert event.event_at == event.received_at
    [member] = rows(engine, Member)
    assert (member.guid, member.connection_status_id, member.current_event_id) == (
        MEMBER,
        3,
        event.id,
    )
    assert member.connection_status_message == status_body()["connection_status_message"]
    assert member.first_received_at == member.received_at


def test_schema_violations_are_422_with_one_detail_per_field_and_quarantined(
    post_status: PostStatus, engine: Engine
) -> None:
    bad = {
        "member_guid": 12,
        "connection_status_id": "three",
        "type": "MEMBER",
        "user_guid": "",
        "connection_status_updated_at": "yesterday",
    }

    response = post_status(bad)

    details = assert_error_shape(response, 422, "validation_failed")
    fields = sorted(detail["field"] for detail in details)
    assert fields == sorted(
        ["member_guid", "connection_status_id", "type", "user_guid", "connection_status_updated_at"]
    )
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.endpoint, rejected.status_code) == ("connection-status", 422)
    assert orjson.loads(rejected.body or b"") == bad
    assert count(engine, MemberEvent) == 0


@pytest.mark.parametrize(
    ("overrides", "bad_field"),
    [
        ({"member_guid": None}, "member_guid"),
        ({"member_guid": ""}, "member_guid"),
        ({"member_guid": "M" * 256}, "member_guid"),
        ({"connection_status_id": None, "connection_status": None}, "connection_status_id"),
        ({"connection_status_id": -1}, "connection_status_id"),
        ({"connection_status_id": 2**31}, "connection_status_id"),
        ({"connection_status_id": 3.0}, "connection_status_id"),
        ({"connection_status_id": True}, "connection_status_id"),
        ({"connection_status": 3}, "connection_status"),
        ({"connection_status": "X" * 256}, "connection_status"),
        ({"connection_status_message": ["a"]}, "connection_status_message"),
        ({"type": "JOB"}, "type"),
        ({"action": 1}, "action"),
        ({"updated_at": 1764064830}, "updated_at"),
    ],
)
def test_single_bad_field_is_named_in_the_422(
    post_status: PostStatus, engine: Engine, overrides: dict[str, Any], bad_field: str
) -> None:
    response = post_status(status_body(**overrides))

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == [bad_field]
    assert count(engine, RejectedDelivery) == 1
    assert count(engine, Member) == 0


@pytest.mark.parametrize("body", [[], "x", 3, None])
def test_body_that_is_not_an_object_is_422(client: FlaskClient, body: Any) -> None:
    headers = {**basic_header(), "Content-Type": "application/json"}
    response = client.post(URL, data=orjson.dumps(body), headers=headers)

    assert len(assert_error_shape(response, 422, "validation_failed")) == 1


def test_malformed_json_is_400_and_quarantined(client: FlaskClient, engine: Engine) -> None:
    headers = {**basic_header(), "Content-Type": "application/json"}
    response = client.post(URL, data=b'{"member_guid": ', headers=headers)

    assert_error_shape(response, 400, "malformed_json")
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.endpoint == "connection-status"


def test_only_an_id_or_only_a_name_is_enough_and_each_fills_the_other(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status({"member_guid": "MBR-a", "connection_status_id": 2})
    post_status({"member_guid": "MBR-b", "connection_status": "locked"})

    by_guid = {member.guid: member for member in rows(engine, Member)}
    assert (by_guid["MBR-a"].connection_status_id, by_guid["MBR-a"].connection_status) == (
        2,
        "DENIED",
    )
    # The name is kept exactly as sent; only the missing id comes from the table.
    assert (by_guid["MBR-b"].connection_status_id, by_guid["MBR-b"].connection_status) == (
        5,
        "locked",
    )


def test_unknown_fields_and_a_null_type_are_kept(post_status: PostStatus, engine: Engine) -> None:
    body = status_body(type=None, aggregated_at=1764064830, nested={"list": [1, None, "x"]})

    assert post_status(body).status_code == 204
    [event] = rows(engine, MemberEvent)
    assert event.payload == body


@pytest.mark.parametrize("code", sorted(CONNECTION_STATUSES))
def test_each_known_status_is_stored_under_mx_s_name(
    post_status: PostStatus, engine: Engine, code: int
) -> None:
    known = CONNECTION_STATUSES[code]
    # An id sent alone is stored with MX's name for it.
    response = post_status(status_body(connection_status_id=code, connection_status=None))

    assert response.status_code == 204
    [member] = rows(engine, Member)
    assert (member.connection_status_id, member.connection_status) == (code, known.name)


def test_unknown_future_status_is_stored_as_sent(post_status: PostStatus, engine: Engine) -> None:
    response = post_status(status_body(connection_status_id=42, connection_status="RECONNECTING"))

    assert response.status_code == 204
    [member] = rows(engine, Member)
    assert (member.connection_status_id, member.connection_status) == (42, "RECONNECTING")


# Duplicates: webhook-id, MX's own timestamp, and a repeat of the current state.


def test_a_repeated_signed_webhook_id_adds_no_history(client: FlaskClient, engine: Engine) -> None:
    now = datetime.now(UTC)
    first, again = (orjson.dumps(status_body(connection_status_id=code)) for code in (3, 2))
    for body in (first, again):
        response = client.post(URL, data=body, headers=signed_headers(body, "msg_1", now))
        assert response.status_code == 204

    [event] = rows(engine, MemberEvent)
    assert (event.delivery_id, event.connection_status_id) == ("msg_1", 3)


def test_an_unsigned_webhook_id_does_not_make_a_new_status_a_repeat(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status(status_body(), delivery_id="msg_1")
    post_status(status_body(connection_status_id=2), delivery_id="msg_1")

    assert [e.connection_status_id for e in rows(engine, MemberEvent)] == [3, 2]


def test_same_status_and_mx_timestamp_is_the_same_delivery(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status(status_body(connection_status_updated_at="2026-11-25T10:00:30Z"))
    post_status(
        status_body(
            connection_status_id=6,
            connection_status="CONNECTED",
            connection_status_updated_at="2026-11-25T10:01:00Z",
        )
    )
    response = post_status(status_body(connection_status_updated_at="2026-11-25T11:00:30+01:00"))

    assert response.status_code == 204
    assert count(engine, MemberEvent) == 2
    assert rows(engine, Member)[0].connection_status_id == 6


def test_repeat_of_the_current_state_adds_no_history(
    post_status: PostStatus, engine: Engine
) -> None:
    # MX retries without a webhook-id and without a timestamp: only the state tells it apart.
    for _ in range(3):
        assert post_status().status_code == 204

    [event] = rows(engine, MemberEvent)
    [member] = rows(engine, Member)
    assert member.current_event_id == event.id


def test_same_status_with_a_new_message_is_a_transition(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status()
    post_status(status_body(connection_status_message="Please answer the new challenge."))

    assert count(engine, MemberEvent) == 2
    assert rows(engine, Member)[0].connection_status_message == "Please answer the new challenge."


def test_challenged_again_after_connected_is_a_new_transition(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status()
    post_status(status_body(connection_status_id=6, connection_status="CONNECTED"))
    post_status()

    assert [e.connection_status_id for e in rows(engine, MemberEvent)] == [3, 6, 3]
    [member] = rows(engine, Member)
    assert member.connection_status_id == 3
    assert member.current_event_id == rows(engine, MemberEvent)[-1].id


# Out-of-order arrival: the latest event time is current; a late event is history only.


def test_older_event_arriving_late_is_history_not_current(
    post_status: PostStatus, engine: Engine
) -> None:
    newer = post_status(
        status_body(
            connection_status_id=6,
            connection_status="CONNECTED",
            connection_status_updated_at="2026-11-25T10:05:00Z",
        )
    )
    late = post_status(status_body(connection_status_updated_at="2026-11-25T10:01:00Z"))

    assert (newer.status_code, late.status_code) == (204, 204)
    [member] = rows(engine, Member)
    assert member.connection_status_id == 6
    assert member.event_at == datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    events = rows(engine, MemberEvent)
    assert [(e.connection_status_id, e.event_at_source) for e in events] == [
        (6, "body"),
        (3, "body"),
    ]
    assert member.current_event_id == events[0].id


def test_current_state_follows_the_latest_event_time_whatever_the_arrival_order(
    post_status: PostStatus, engine: Engine
) -> None:
    for code, minute in [(3, 3), (0, 0), (16, 5), (4, 1), (6, 4)]:
        body = status_body(
            connection_status_id=code,
            connection_status=None,
            updated_at=f"2026-11-25T10:0{minute}:00Z",
        )
        assert post_status(body).status_code == 204

    [member] = rows(engine, Member)
    assert member.connection_status_id == 16
    [current] = rows(engine, MemberEvent, id=member.current_event_id)
    assert current.connection_status_id == 16
    assert count(engine, MemberEvent) == 5


def test_signed_delivery_is_ordered_by_its_signing_time(
    client: FlaskClient, engine: Engine
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    later = orjson.dumps(status_body(connection_status_id=6, connection_status="CONNECTED"))
    earlier = orjson.dumps(status_body())

    first = client.post(URL, data=later, headers=signed_headers(later, "msg_b", now))
    second = client.post(
        URL, data=earlier, headers=signed_headers(earlier, "msg_a", now - timedelta(seconds=60))
    )

    assert (first.status_code, second.status_code) == (204, 204)
    [member] = rows(engine, Member)
    assert (member.connection_status_id, member.event_at) == (6, now)
    sources = {e.delivery_id: (e.event_at_source, e.event_at) for e in rows(engine, MemberEvent)}
    assert sources == {
        "msg_b": ("signature", now),
        "msg_a": ("signature", now - timedelta(seconds=60)),
    }


def test_forged_signature_time_is_not_trusted_with_basic_auth(
    client: FlaskClient, engine: Engine
) -> None:
    headers = {
        **basic_header(),
        "webhook-id": "msg_forged",
        "webhook-timestamp": "1000000000",
        "webhook-signature": "v1,AAAA",
    }
    assert client.post(URL, json=status_body(), headers=headers).status_code == 204

    [event] = rows(engine, MemberEvent)
    assert event.event_at_source == "received"


def test_a_newer_event_that_omits_the_user_keeps_the_known_user(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status()
    post_status({"member_guid": MEMBER, "connection_status_id": 2})

    [member] = rows(engine, Member)
    assert (member.connection_status_id, member.user_guid) == (2, USER)


# The member's institution comes from its job callbacks.


def test_institution_is_learned_from_an_earlier_job_callback(
    client: FlaskClient, post_job: Callable[..., Any], post_status: PostStatus, engine: Engine
) -> None:
    post_job(job_body(member_guid=MEMBER, institution_guid="INS-1"))
    post_status()

    assert rows(engine, Member)[0].institution_guid == "INS-1"


def test_institution_is_filled_in_when_a_later_job_callback_names_it(
    post_job: Callable[..., Any], post_status: PostStatus, engine: Engine
) -> None:
    post_status()
    assert rows(engine, Member)[0].institution_guid is None

    post_job(job_body(member_guid=MEMBER, institution_guid=None))
    assert rows(engine, Member)[0].institution_guid is None
    post_job(job_body(guid="JOB-2", member_guid=MEMBER, institution_guid="INS-2"))

    assert rows(engine, Member)[0].institution_guid == "INS-2"


def test_institution_in_the_body_is_used_when_mx_sends_one(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status(status_body(institution_guid="INS-body"))

    assert rows(engine, Member)[0].institution_guid == "INS-body"


# Racing copies, as two gunicorn workers would receive them.


@pytest.fixture
def two_apps(settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    first, second = create_app(settings), create_app(settings)
    yield first, second
    for app in (first, second):
        app_state(app).engine.dispose()


def post_together(apps: tuple[Flask, Flask], body: dict[str, Any]) -> list[int]:
    barrier = threading.Barrier(len(apps), timeout=10)

    def post(app: Flask) -> int:
        client = app.test_client()
        barrier.wait()
        return client.post(URL, json=body, headers=basic_header()).status_code

    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        return [f.result(timeout=60) for f in [pool.submit(post, app) for app in apps]]


def test_identical_deliveries_racing_store_one_transition(
    two_apps: tuple[Flask, Flask], engine: Engine
) -> None:
    for round_number in range(5):
        member = f"MBR-race-{round_number}"
        assert post_together(two_apps, status_body(member_guid=member)) == [204, 204]
        assert count(engine, MemberEvent, member_guid=member) == 1
        # Then a transition both copies of which race against an existing current state.
        connected = status_body(member_guid=member, connection_status_id=6, connection_status=None)
        assert post_together(two_apps, connected) == [204, 204]
        assert count(engine, MemberEvent, member_guid=member) == 2


# Quarantined connection-status bodies are replayed through the same ingest.


def test_quarantined_body_replays_as_of_when_it_arrived(
    post_status: PostStatus, engine: Engine
) -> None:
    from service.handlers.registry import handler_plan
    from service.platform.db import make_session_factory, transaction
    from service.webhooks.quarantine import replay

    assert post_status(status_body(connection_status_id="2")).status_code == 422
    [rejected] = rows(engine, RejectedDelivery)
    assert (
        post_status(status_body(connection_status_id=6, connection_status=None)).status_code == 204
    )
    fixed = orjson.dumps(status_body(connection_status_id=2, connection_status=None))

    with transaction(make_session_factory(engine)) as session:
        outcome = replay(session, rejected.id, handler_plan(Settings()), fixed)

    assert outcome.result.outcome == "stale"
    [member] = rows(engine, Member)
    assert member.connection_status_id == 6
    [replayed] = rows(engine, MemberEvent, connection_status_id=2)
    assert replayed.received_at == rejected.received_at


def test_outcomes_are_counted_under_their_own_endpoint(
    post_status: PostStatus, client: FlaskClient
) -> None:
    def counted(outcome: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        prefix = (
            f'jobhooks_webhooks_received_total{{endpoint="connection-status",outcome="{outcome}"'
        )
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    before = {outcome: counted(outcome) for outcome in ("accepted", "duplicate", "rejected")}
    post_status()
    post_status()
    post_status({"member_guid": ""})

    assert counted("accepted") == before["accepted"] + 1
    assert counted("duplicate") == before["duplicate"] + 1
    assert counted("rejected") == before["rejected"] + 1


def test_an_older_repeat_dated_by_mx_is_history_not_a_retry(
    post_status: PostStatus, engine: Engine
) -> None:
    post_status(status_body(updated_at="2026-11-25T10:00:00Z"))
    post_status(status_body(connection_status_id=6, updated_at="2026-11-25T10:01:00Z"))
    post_status(status_body(updated_at="2026-11-25T10:02:00Z"))
    # MX dated this one before the CONNECTED: a real, older CHALLENGED that arrived late.
    late = post_status(status_body(updated_at="2026-11-25T09:59:00Z"))

    assert late.status_code == 204
    assert count(engine, MemberEvent) == 4
    assert rows(engine, Member)[0].event_at == datetime(2026, 11, 25, 10, 2, tzinfo=UTC)
