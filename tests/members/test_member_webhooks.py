"""POST /webhooks/mx/members (MX's MEMBER webhook) on a real SQLite file and a real PostgreSQL:
history and current state, the wrapped form, X-CALLBACK-PAYLOAD, repeats, deletion, validation,
one prompt across MEMBER and CONNECTION_STATUS, the institution outage alert, and POST /webhooks/mx.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from conftest import NOTIFY_SECRET, Sink, assert_error_shape, basic_header, bearer_header, drain
from db_rows import count, rows
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook
from werkzeug.test import TestResponse

from service.members.models import InstitutionAlert, Member, MemberEvent
from service.outbox.models import HandlerRun
from service.outbox.worker import Worker
from service.webhooks.models import RejectedDelivery

URL = "/webhooks/mx/members"
ANY_URL = "/webhooks/mx"
STATUS_URL = "/webhooks/mx/connection-status"
MEMBER = "MBR-48d9a481-f2a2-7e13-2685-62869cf0d33a"
USER = "USR-fa7537f3-48aa-a683-a02a-b18940482f54"
INSTITUTION = "INS-f1a3285d-e855-b68f-6aa7-8ae775c0e0e9"
CALLBACK_PAYLOAD = "eyJwYXJ0bmVyX3JlZiI6ICJhYmMtMTIzIn0="


def member_body(**overrides: Any) -> dict[str, Any]:
    """A member object shaped like MX's MEMBER webhook documentation."""
    body: dict[str, Any] = {
        "aggregated_at": 1764064800,
        "connection_status": "CONNECTED",
        "connection_status_id": 6,
        "connection_status_message": "Connected to MX Bank.",
        "created_at": 1764064500,
        "guid": MEMBER,
        "id": "unique_member_id_1",
        "institution_code": "mxbank",
        "institution_guid": INSTITUTION,
        "is_being_aggregated": False,
        "is_oauth": False,
        "metadata": '{"credentials_last_refreshed_at": "2026-11-25"}',
        "name": "MX Bank",
        "successfully_aggregated_at": 1764064800,
        "user_guid": USER,
        "user_id": "partner-user-8342",
    }
    body.update(overrides)
    return body


def challenged(**overrides: Any) -> dict[str, Any]:
    return member_body(
        connection_status="CHALLENGED",
        connection_status_id=3,
        connection_status_message="To authenticate, please answer the security question.",
        is_being_aggregated=True,
        **overrides,
    )


def post(
    client: FlaskClient,
    body: Any,
    url: str = URL,
    callback_payload: str | None = None,
) -> TestResponse:
    headers = basic_header()
    if callback_payload is not None:
        headers["X-CALLBACK-PAYLOAD"] = callback_payload
    return client.post(url, json=body, headers=headers)


def accepted(client: FlaskClient, body: Any, url: str = URL, **kw: Any) -> None:
    response = post(client, body, url, **kw)
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.get_data() == b""


def member_detail(client: FlaskClient, guid: str = MEMBER) -> dict[str, Any]:
    response = client.get(f"/members/{guid}", headers=bearer_header())
    assert response.status_code == 200, response.get_data(as_text=True)
    document: dict[str, Any] = response.get_json()
    return document


def handlers_run(engine: Engine) -> list[str]:
    return [run.handler for run in rows(engine, HandlerRun)]


# What a MEMBER webhook stores.


def test_documented_member_body_is_stored_as_history_and_current_state(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, member_body())

    [event] = rows(engine, MemberEvent)
    assert (event.member_guid, event.user_guid, event.kind) == (MEMBER, USER, "member")
    assert (event.connection_status_id, event.connection_status) == (6, "CONNECTED")
    assert event.connection_status_message == "Connected to MX Bank."
    assert event.payload == member_body()
    assert event.callback_payload is None
    [member] = rows(engine, Member)
    assert (member.guid, member.user_guid, member.current_event_id) == (MEMBER, USER, event.id)
    assert (member.institution_guid, member.institution_code) == (INSTITUTION, "mxbank")
    assert (member.connection_status_id, member.connection_status) == (6, "CONNECTED")
    assert member.deleted_at is None
    assert count(engine, HandlerRun) == 0


def test_member_detail_shows_the_member_webhook(client: FlaskClient) -> None:
    accepted(client, member_body())

    document = member_detail(client)

    member = document["member"]
    assert (member["guid"], member["institution_guid"], member["institution_code"]) == (
        MEMBER,
        INSTITUTION,
        "mxbank",
    )
    assert (member["connection_status_id"], member["connection_status"]) == (6, "CONNECTED")
    assert member["deleted_at"] is None
    [entry] = document["history"]
    assert (entry["source"], entry["action"], entry["current"]) == ("member", None, True)
    assert entry["payload"] == member_body()


def test_wrapped_member_is_taken_with_its_action(client: FlaskClient, engine: Engine) -> None:
    body = {"action": "updated", "member": member_body()}

    accepted(client, body)

    [event] = rows(engine, MemberEvent)
    assert (event.kind, event.action, event.member_guid) == ("member", "updated", MEMBER)
    assert event.payload == body
    [member] = rows(engine, Member)
    assert (member.institution_guid, member.institution_code, member.connection_status_id) == (
        INSTITUTION,
        "mxbank",
        6,
    )


def test_a_challenged_member_queues_one_mfa_prompt(client: FlaskClient, engine: Engine) -> None:
    accepted(client, challenged())

    [event] = rows(engine, MemberEvent)
    [run] = rows(engine, HandlerRun)
    assert (run.handler, run.member_event_id, run.member_guid) == ("mfa_prompt", event.id, MEMBER)


def test_callback_payload_header_is_stored_with_the_event_and_served(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, member_body(), callback_payload=CALLBACK_PAYLOAD)
    accepted(client, challenged())

    first, second = rows(engine, MemberEvent)
    assert (first.callback_payload, second.callback_payload) == (CALLBACK_PAYLOAD, None)
    history = member_detail(client)["history"]
    assert [entry["callback_payload"] for entry in history] == [CALLBACK_PAYLOAD, None]


def test_exact_repeat_is_204_and_adds_no_history(client: FlaskClient, engine: Engine) -> None:
    accepted(client, challenged())
    [event] = rows(engine, MemberEvent)

    for _ in range(2):
        accepted(client, challenged())

    assert [e.id for e in rows(engine, MemberEvent)] == [event.id]
    assert rows(engine, Member)[0].current_event_id == event.id
    assert handlers_run(engine) == ["mfa_prompt"]


def test_repeat_in_the_wrapped_form_is_the_same_delivery(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, {"action": "updated", "member": member_body()})
    accepted(client, {"action": "updated", "member": member_body()})

    assert count(engine, MemberEvent) == 1


# Deletion.


@pytest.mark.parametrize(
    "deletion",
    [
        {"action": "deleted", "member": member_body()},
        member_body(action="deleted"),
        {
            "action": "deleted",
            "member": member_body(connection_status="LOCKED", connection_status_id=5),
        },
    ],
    ids=["wrapped", "bare", "wrapped-actionable-status"],
)
def test_deleted_action_marks_the_member_deleted_keeps_history_and_runs_nothing(
    client: FlaskClient, engine: Engine, deletion: dict[str, Any]
) -> None:
    accepted(client, member_body())

    accepted(client, deletion)

    events = rows(engine, MemberEvent)
    assert len(events) == 2
    assert events[-1].action == "deleted"
    [member] = rows(engine, Member)
    assert member.deleted_at is not None
    assert member.current_event_id == events[-1].id
    document = member_detail(client)
    assert document["member"]["deleted_at"] is not None
    assert [entry["current"] for entry in document["history"]] == [False, True]
    assert [entry["action"] for entry in document["history"]] == [None, "deleted"]
    assert count(engine, HandlerRun) == 0


def test_a_deleted_member_of_a_challenge_is_not_prompted(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, {"action": "deleted", "member": challenged()})

    [member] = rows(engine, Member)
    assert member.deleted_at is not None
    assert count(engine, HandlerRun) == 0
    assert member_detail(client)["member"]["deleted_at"] is not None


def test_repeated_deletion_adds_no_history(client: FlaskClient, engine: Engine) -> None:
    accepted(client, member_body())
    deletion = {"action": "deleted", "member": member_body()}
    accepted(client, deletion)
    deleted_at = rows(engine, Member)[0].deleted_at

    accepted(client, deletion)

    assert count(engine, MemberEvent) == 2
    assert rows(engine, Member)[0].deleted_at == deleted_at


# Validation and quarantine.


@pytest.mark.parametrize(
    ("member", "field"),
    [
        (member_body(connection_status_id="x"), "connection_status_id"),
        (member_body(aggregated_at="yesterday"), "aggregated_at"),
        (member_body(guid=None), "guid"),
        (member_body(is_being_aggregated="no"), "is_being_aggregated"),
    ],
    ids=["status-id", "aggregated-at", "guid", "is-being-aggregated"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
def test_a_bad_field_is_a_422_naming_it_and_the_body_is_quarantined(
    client: FlaskClient, engine: Engine, member: dict[str, Any], field: str, wrapped: bool
) -> None:
    body = {"action": "updated", "member": member} if wrapped else member

    response = post(client, body)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == [f"member.{field}" if wrapped else field]
    assert count(engine, MemberEvent) == 0
    assert count(engine, Member) == 0
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.endpoint, rejected.status_code, rejected.reason) == (
        "members",
        422,
        "validation_failed",
    )
    assert orjson.loads(rejected.body or b"") == body
    listed = client.get("/rejected-deliveries", headers=bearer_header()).get_json()
    [entry] = listed["rejected_deliveries"]
    assert (entry["id"], entry["endpoint"]) == (rejected.id, "members")
    assert [detail["field"] for detail in entry["details"]] == [
        detail["field"] for detail in details
    ]


def test_a_wrapper_whose_member_is_not_an_object_is_422(
    client: FlaskClient, engine: Engine
) -> None:
    response = post(client, {"action": "updated", "member": "MBR-1"})

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == ["member"]
    assert count(engine, RejectedDelivery) == 1


# One prompt for a MEMBER CHALLENGED and a CONNECTION_STATUS CHALLENGED of the same member.


def connection_status_challenged() -> dict[str, Any]:
    return {
        "action": "CHANGED",
        "type": "CONNECTION_STATUS",
        "connection_status": "CHALLENGED",
        "connection_status_id": 3,
        "connection_status_message": "Please answer the challenge to finish connecting.",
        "member_guid": MEMBER,
        "user_guid": USER,
    }


def test_member_then_connection_status_challenged_prompt_once(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, challenged())
    accepted(client, connection_status_challenged(), STATUS_URL)

    assert [e.kind for e in rows(engine, MemberEvent)] == ["member", "connection_status"]
    [run] = rows(engine, HandlerRun)
    assert run.handler == "mfa_prompt"
    assert run.member_event_id == rows(engine, MemberEvent)[0].id


def test_connection_status_then_member_challenged_prompt_once(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, connection_status_challenged(), STATUS_URL)
    accepted(client, challenged())

    assert count(engine, MemberEvent) == 2
    assert handlers_run(engine) == ["mfa_prompt"]


def test_a_new_challenge_after_connecting_prompts_again(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, challenged())
    accepted(client, member_body())
    accepted(client, connection_status_challenged(), STATUS_URL)

    assert handlers_run(engine) == ["mfa_prompt", "mfa_prompt"]


# The institution outage alert, from MEMBER webhooks alone.


def degraded(index: int, institution: str = INSTITUTION) -> dict[str, Any]:
    return member_body(
        guid=f"MBR-48d9a481-f2a2-7e13-2685-{index:012d}",
        user_guid=f"USR-fa7537f3-48aa-a683-a02a-{index:012d}",
        institution_guid=institution,
        connection_status="DEGRADED",
        connection_status_id=9,
        connection_status_message="We're having trouble connecting to this institution.",
    )


def test_ten_members_of_one_institution_degraded_raise_one_alert(
    client: FlaskClient, engine: Engine
) -> None:
    for index in range(9):
        accepted(client, degraded(index))
    assert count(engine, HandlerRun, handler="alert") == 0

    accepted(client, degraded(9))
    accepted(client, degraded(10))

    [alert] = rows(engine, HandlerRun, handler="alert")
    tenth = rows(engine, MemberEvent, member_guid=degraded(9)["guid"])[0]
    assert alert.member_event_id == tenth.id
    assert alert.context == {
        "institution_guid": INSTITUTION,
        "member_count": 10,
        "window_seconds": 900,
    }
    [window] = rows(engine, InstitutionAlert)
    assert (window.institution_guid, window.member_count) == (INSTITUTION, 10)
    assert handlers_run(engine) == ["alert"]


def test_degraded_members_of_different_institutions_raise_no_alert(
    client: FlaskClient, engine: Engine
) -> None:
    for index in range(10):
        accepted(client, degraded(index, institution=f"INS-{index % 2}"))

    assert count(engine, HandlerRun, handler="alert") == 0


def test_deleted_degraded_members_do_not_count_toward_the_alert(
    client: FlaskClient, engine: Engine
) -> None:
    for index in range(9):
        accepted(client, degraded(index))
    accepted(client, {"action": "deleted", "member": degraded(0)})

    accepted(client, degraded(9))

    assert count(engine, HandlerRun, handler="alert") == 0


# POST /webhooks/mx: one URL for every MX webhook.


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
def test_any_kind_endpoint_routes_a_member_body_to_the_same_result(
    client: FlaskClient, engine: Engine, wrapped: bool
) -> None:
    body = {"action": "updated", "member": challenged()} if wrapped else challenged()

    accepted(client, body, ANY_URL, callback_payload=CALLBACK_PAYLOAD)

    [event] = rows(engine, MemberEvent)
    assert (event.kind, event.connection_status_id, event.connection_status) == (
        "member",
        3,
        "CHALLENGED",
    )
    assert (event.payload, event.callback_payload) == (body, CALLBACK_PAYLOAD)
    [member] = rows(engine, Member)
    assert (member.institution_guid, member.institution_code) == (INSTITUTION, "mxbank")
    assert handlers_run(engine) == ["mfa_prompt"]
    # And the member endpoint sees the same delivery as a repeat.
    accepted(client, body)
    assert count(engine, MemberEvent) == 1


def test_any_kind_endpoint_raises_the_outage_alert_from_member_bodies(
    client: FlaskClient, engine: Engine
) -> None:
    for index in range(10):
        accepted(client, degraded(index), ANY_URL)

    [alert] = rows(engine, HandlerRun, handler="alert")
    assert alert.context is not None and alert.context["member_count"] == 10


def test_any_kind_endpoint_quarantines_a_bad_member_under_its_own_name(
    client: FlaskClient, engine: Engine
) -> None:
    response = post(client, member_body(aggregated_at="yesterday"), ANY_URL)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == ["aggregated_at"]
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.endpoint == "mx"


def test_member_times_are_unix_seconds(client: FlaskClient, engine: Engine) -> None:
    # ISO text is taken too; neither is stored apart from the body, so both simply pass.
    accepted(client, member_body(aggregated_at="2026-11-25T10:00:00Z"))
    accepted(
        client,
        member_body(
            guid="MBR-other",
            aggregated_at=int(datetime(2026, 11, 25, tzinfo=UTC).timestamp()),
        ),
    )

    assert count(engine, Member) == 2


# What a MEMBER run delivers, through a real worker to a real HTTP receiver.


@pytest.fixture
def notify_worker(make_worker: Callable[..., Worker], sink: Sink) -> Worker:
    return make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)


@pytest.mark.parametrize(
    ("code", "name", "handler", "action"),
    [
        (3, "CHALLENGED", "mfa_prompt", "prompt_user_for_mfa"),
        (7, "IMPEDED", "user_action_required", "ask_user_to_update_credentials"),
        (19, "EXPIRED", "user_action_required", "ask_user_to_update_credentials"),
    ],
)
def test_member_run_delivers_a_signed_member_notification_naming_the_institution(
    client: FlaskClient,
    notify_worker: Worker,
    sink: Sink,
    engine: Engine,
    code: int,
    name: str,
    handler: str,
    action: str,
) -> None:
    accepted(client, member_body())
    body = member_body(
        connection_status_id=code,
        connection_status=name,
        connection_status_message=f"The member is {name.lower()}.",
    )
    accepted(client, body)

    assert drain(notify_worker) == 1

    [received] = sink.requests
    [run] = rows(engine, HandlerRun)
    [event] = rows(engine, MemberEvent, id=run.member_event_id)
    document = Webhook(NOTIFY_SECRET).verify(received.body, received.headers)
    assert received.headers["webhook-id"] == run.idempotency_key
    assert document["type"] == f"member.{handler}"
    assert document["data"] == {
        "action": action,
        "member_guid": MEMBER,
        "user_guid": USER,
        "institution_guid": INSTITUTION,
        "connection_status_id": code,
        "connection_status": name,
        "connection_status_message": f"The member is {name.lower()}.",
        "event_at": event.event_at.isoformat().replace("+00:00", "Z"),
        "previous_connection_status_id": 6,
        "previous_connection_status": "CONNECTED",
        "source": "member",
        "member_event_id": event.id,
    }
    assert rows(engine, HandlerRun)[0].state == "succeeded"


# Found while writing these tests; see each reason.


def test_member_webhook_repeating_a_connection_status_still_names_the_institution_code(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(
        client,
        connection_status_challenged()
        | {"connection_status_message": challenged()["connection_status_message"]},
        STATUS_URL,
    )
    accepted(client, challenged(), callback_payload=CALLBACK_PAYLOAD)

    [member] = rows(engine, Member)
    assert member.institution_guid == INSTITUTION
    assert member.institution_code == "mxbank"


def test_a_name_in_lower_case_counts_toward_the_outage_alert(
    client: FlaskClient, engine: Engine
) -> None:
    for index in range(10):
        accepted(client, degraded(index) | {"connection_status": "degraded"})

    assert count(engine, HandlerRun, handler="alert") == 1
