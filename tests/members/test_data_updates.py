"""POST /webhooks/mx/data-updates (MX's member_data_updated webhooks) on a real SQLite file and a
real PostgreSQL: stored once, one data_ready run, one signed notification through a real worker and
HTTP receiver, the member API's listing, types MX adds later, validation, and POST /webhooks/mx."""

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

from service.members.models import Member, MemberDataUpdate, MemberEvent
from service.outbox.models import HandlerRun
from service.outbox.worker import Worker
from service.webhooks.models import RejectedDelivery

URL = "/webhooks/mx/data-updates"
ANY_URL = "/webhooks/mx"
MEMBER = "MBR-48d9a481-f2a2-7e13-2685-62869cf0d33a"
USER = "USR-fa7537f3-48aa-a683-a02a-b18940482f54"
INSTITUTION = "INS-f1a3285d-e855-b68f-6aa7-8ae775c0e0e9"
COMPLETED_AT = 1531947410  # 2018-07-18T20:56:50Z, MX's documented example


def update_body(data_type: str = "AGGREGATION", **overrides: Any) -> dict[str, Any]:
    """A data-updated body shaped like MX's documentation for each type."""
    body: dict[str, Any] = {
        "action": "member_data_updated",
        "completed_at": COMPLETED_AT,
        "completed_on": "2018-07-18",
        "is_background": True,
        "job_guid": "JOB-d7b1ec85-c05d-4f8e-a9e4-5b1b3a1d9c6e",
        "member_guid": MEMBER,
        "type": data_type,
        "user_guid": USER,
        "user_id": "partner-user-8342",
    }
    if data_type == "AGGREGATION":
        body.update(transactions_created_count=3, transactions_updated_count=2)
    elif data_type == "STATEMENT":
        body.update(statements_created_count=1)
    elif data_type == "VERIFICATION":
        body.update(accounts=["ACT-82a93692-f756-534f-9b2e-ad10a0f38462"])
    body.update(overrides)
    return body


def post(client: FlaskClient, body: Any, url: str = URL, **headers: str) -> TestResponse:
    return client.post(url, json=body, headers={**basic_header(), **headers})


def accepted(client: FlaskClient, body: Any, url: str = URL) -> None:
    response = post(client, body, url)
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.get_data() == b""


def detail(client: FlaskClient, guid: str = MEMBER) -> dict[str, Any]:
    response = client.get(f"/members/{guid}", headers=bearer_header())
    assert response.status_code == 200, response.get_data(as_text=True)
    document: dict[str, Any] = response.get_json()
    return document


@pytest.fixture
def notify_worker(make_worker: Callable[..., Worker], sink: Sink) -> Worker:
    return make_worker(notify_url=sink.url, notify_signing_secret=NOTIFY_SECRET)


# Storing and queueing.


def test_aggregation_update_is_stored_once_with_one_data_ready_run(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, update_body())

    [update] = rows(engine, MemberDataUpdate)
    assert (update.member_guid, update.user_guid, update.data_type, update.action) == (
        MEMBER,
        USER,
        "AGGREGATION",
        "member_data_updated",
    )
    assert update.completed_at == datetime.fromtimestamp(COMPLETED_AT, UTC)
    assert update.completed_on == "2018-07-18"
    assert update.payload == update_body()
    [run] = rows(engine, HandlerRun)
    assert (run.handler, run.data_update_id, run.member_guid) == ("data_ready", update.id, MEMBER)
    assert (run.event_id, run.member_event_id, run.job_guid) == (None, None, None)
    assert (run.state, run.attempts) == ("pending", 0)
    # A data update says nothing of the member's connection.
    assert count(engine, Member) == 0
    assert count(engine, MemberEvent) == 0


def test_the_same_body_again_is_204_and_adds_nothing(client: FlaskClient, engine: Engine) -> None:
    accepted(client, update_body())
    for _ in range(2):
        accepted(client, update_body())

    assert count(engine, MemberDataUpdate) == 1
    assert count(engine, HandlerRun) == 1


def test_a_repeat_is_counted_as_a_duplicate(client: FlaskClient) -> None:
    def counted(outcome: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        prefix = f'jobhooks_webhooks_received_total{{endpoint="data-updates",outcome="{outcome}"'
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    before = counted("accepted"), counted("duplicate")
    accepted(client, update_body())
    accepted(client, update_body())

    assert (counted("accepted"), counted("duplicate")) == (before[0] + 1, before[1] + 1)


def test_each_type_of_one_completion_is_its_own_update(client: FlaskClient, engine: Engine) -> None:
    for data_type in ("AGGREGATION", "BALANCE", "HISTORY", "STATEMENT", "VERIFICATION"):
        accepted(client, update_body(data_type))

    assert [u.data_type for u in rows(engine, MemberDataUpdate)] == [
        "AGGREGATION",
        "BALANCE",
        "HISTORY",
        "STATEMENT",
        "VERIFICATION",
    ]
    assert [run.handler for run in rows(engine, HandlerRun)] == ["data_ready"] * 5


def test_a_later_completion_of_the_same_type_is_a_new_update(
    client: FlaskClient, engine: Engine
) -> None:
    accepted(client, update_body())
    accepted(client, update_body(completed_at=COMPLETED_AT + 3600))

    assert count(engine, MemberDataUpdate) == 2
    assert count(engine, HandlerRun) == 2


def test_a_type_mx_adds_later_is_stored_and_queued(client: FlaskClient, engine: Engine) -> None:
    body = update_body("INVESTMENT_HOLDINGS", holdings_created_count=4)

    accepted(client, body)

    [update] = rows(engine, MemberDataUpdate)
    assert (update.data_type, update.payload) == ("INVESTMENT_HOLDINGS", body)
    [run] = rows(engine, HandlerRun)
    assert (run.handler, run.data_update_id) == ("data_ready", update.id)


# Through a real worker to a real HTTP receiver.


def test_aggregation_update_delivers_one_signed_data_updated_notification(
    client: FlaskClient, notify_worker: Worker, sink: Sink, engine: Engine
) -> None:
    accepted(client, update_body())

    assert drain(notify_worker) == 1

    [received] = sink.requests
    [update] = rows(engine, MemberDataUpdate)
    [run] = rows(engine, HandlerRun)
    document = Webhook(NOTIFY_SECRET).verify(received.body, received.headers)
    assert received.headers["webhook-id"] == run.idempotency_key
    assert document["type"] == "member.data_updated"
    assert document["data"] == {
        "action": "fetch_member_data",
        "member_guid": MEMBER,
        "user_guid": USER,
        "institution_guid": None,
        "data_type": "AGGREGATION",
        "completed_at": "2018-07-18T20:56:50Z",
        "completed_on": "2018-07-18",
        "counts": {"transactions_created_count": 3, "transactions_updated_count": 2},
        "accounts": None,
        "data_update_id": update.id,
    }
    assert rows(engine, HandlerRun)[0].state == "succeeded"

    # MX's retry of the same body delivers nothing more.
    accepted(client, update_body())
    assert drain(notify_worker) == 0
    assert len(sink.requests) == 1


@pytest.mark.parametrize(
    ("data_type", "counts", "accounts"),
    [
        ("BALANCE", {}, None),
        ("STATEMENT", {"statements_created_count": 1}, None),
        ("VERIFICATION", {}, ["ACT-82a93692-f756-534f-9b2e-ad10a0f38462"]),
        ("INVESTMENT_HOLDINGS", {"holdings_created_count": 4}, None),
    ],
)
def test_each_type_s_notification_names_its_data(
    client: FlaskClient,
    notify_worker: Worker,
    sink: Sink,
    data_type: str,
    counts: dict[str, int],
    accounts: list[str] | None,
) -> None:
    extra = {"holdings_created_count": 4} if data_type == "INVESTMENT_HOLDINGS" else {}
    accepted(client, update_body(data_type, **extra))

    assert drain(notify_worker) == 1

    [received] = sink.requests
    document = Webhook(NOTIFY_SECRET).verify(received.body, received.headers)
    assert document["type"] == "member.data_updated"
    data = document["data"]
    assert (data["data_type"], data["counts"], data["accounts"]) == (data_type, counts, accounts)


def test_notification_names_the_institution_a_member_webhook_gave(
    client: FlaskClient, notify_worker: Worker, sink: Sink
) -> None:
    member = {
        "guid": MEMBER,
        "user_guid": USER,
        "institution_guid": INSTITUTION,
        "institution_code": "mxbank",
        "connection_status": "CONNECTED",
        "connection_status_id": 6,
    }
    accepted(client, member, "/webhooks/mx/members")
    accepted(client, update_body())

    assert drain(notify_worker) == 1

    document = Webhook(NOTIFY_SECRET).verify(sink.requests[0].body, sink.requests[0].headers)
    assert document["data"]["institution_guid"] == INSTITUTION


# The member API.


def test_member_detail_lists_data_updates_newest_first(client: FlaskClient, engine: Engine) -> None:
    # Arrival order differs from completion order: MX's completed_at decides.
    accepted(client, update_body("STATEMENT", completed_at=COMPLETED_AT + 120))
    accepted(client, update_body("AGGREGATION", completed_at=COMPLETED_AT))
    accepted(client, update_body("BALANCE", completed_at=COMPLETED_AT + 60))
    accepted(client, update_body("AGGREGATION", member_guid="MBR-someone-else"))

    document = detail(client)

    assert [u["type"] for u in document["data_updates"]] == ["STATEMENT", "BALANCE", "AGGREGATION"]
    assert document["data_updates_next_cursor"] is None
    newest = document["data_updates"][0]
    assert (newest["member_guid"], newest["user_guid"], newest["action"]) == (
        MEMBER,
        USER,
        "member_data_updated",
    )
    assert newest["completed_at"] == "2018-07-18T20:58:50Z"
    assert newest["completed_on"] == "2018-07-18"
    assert newest["payload"] == update_body("STATEMENT", completed_at=COMPLETED_AT + 120)
    assert sorted(run["handler"] for run in document["handler_runs"]) == ["data_ready"] * 3


def test_member_data_updates_page_with_a_cursor(client: FlaskClient) -> None:
    for offset, data_type in enumerate(["AGGREGATION", "BALANCE", "HISTORY", "STATEMENT"]):
        accepted(client, update_body(data_type, completed_at=COMPLETED_AT + 60 * offset))
    url = f"/members/{MEMBER}/data-updates"

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query: dict[str, Any] = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        response = client.get(url, query_string=query, headers=bearer_header())
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        assert len(page["data_updates"]) == 1
        seen.append(page["data_updates"][0]["type"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["STATEMENT", "HISTORY", "BALANCE", "AGGREGATION"]


def test_a_data_updates_cursor_is_bound_to_its_member(client: FlaskClient) -> None:
    accepted(client, update_body("AGGREGATION"))
    accepted(client, update_body("BALANCE"))
    first = client.get(
        f"/members/{MEMBER}/data-updates", query_string={"limit": 1}, headers=bearer_header()
    ).get_json()
    assert first["next_cursor"] is not None

    response = client.get(
        "/members/MBR-someone-else/data-updates",
        query_string={"limit": 1, "cursor": first["next_cursor"]},
        headers=bearer_header(),
    )

    details = assert_error_shape(response, 400)
    assert [d["field"] for d in details] == ["cursor"]


def test_data_updates_list_needs_a_bearer_token(client: FlaskClient) -> None:
    accepted(client, update_body())

    response = client.get(f"/members/{MEMBER}/data-updates", headers=basic_header())

    assert_error_shape(response, 401, "unauthorized")


def test_a_member_known_only_from_data_updates_has_a_null_member(client: FlaskClient) -> None:
    accepted(client, update_body())

    document = detail(client)

    assert document["member"] is None
    assert document["history"] == []
    assert document["jobs"] == []
    [update] = document["data_updates"]
    assert (update["member_guid"], update["type"]) == (MEMBER, "AGGREGATION")
    [run] = document["handler_runs"]
    assert run["handler"] == "data_ready"


def test_a_member_with_no_webhook_at_all_is_still_404(client: FlaskClient) -> None:
    accepted(client, update_body())

    response = client.get("/members/MBR-nobody", headers=bearer_header())

    assert_error_shape(response, 404, "not_found")


# Validation and quarantine.


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in update_body().items() if k != "member_guid"}, "member_guid"),
        (update_body(member_guid=""), "member_guid"),
        (update_body(completed_on="2018-02-30"), "completed_on"),
        (update_body(completed_on="yesterday"), "completed_on"),
        (update_body(completed_on=20180718), "completed_on"),
        (update_body(completed_at="yesterday"), "completed_at"),
        (update_body(transactions_created_count=-1), "transactions_created_count"),
        (update_body(transactions_created_count="3"), "transactions_created_count"),
        (update_body(accounts="ACT-1"), "accounts"),
        (update_body(type=""), "type"),
        (update_body(is_background="yes"), "is_background"),
    ],
    ids=[
        "missing-member-guid",
        "empty-member-guid",
        "impossible-completed-on",
        "text-completed-on",
        "number-completed-on",
        "text-completed-at",
        "negative-count",
        "text-count",
        "accounts-not-a-list",
        "empty-type",
        "text-is-background",
    ],
)
def test_a_bad_field_is_a_422_naming_it_and_the_body_is_quarantined(
    client: FlaskClient, engine: Engine, body: dict[str, Any], field: str
) -> None:
    response = post(client, body)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == [field]
    assert count(engine, MemberDataUpdate) == 0
    assert count(engine, HandlerRun) == 0
    [rejected] = rows(engine, RejectedDelivery)
    assert (rejected.endpoint, rejected.status_code, rejected.reason) == (
        "data-updates",
        422,
        "validation_failed",
    )
    assert orjson.loads(rejected.body or b"") == body
    [listed] = client.get("/rejected-deliveries", headers=bearer_header()).get_json()[
        "rejected_deliveries"
    ]
    assert (listed["id"], listed["endpoint"]) == (rejected.id, "data-updates")


def test_missing_credentials_are_refused_and_nothing_is_kept(
    client: FlaskClient, engine: Engine
) -> None:
    response = client.post(URL, json=update_body())

    assert_error_shape(response, 401, "unauthorized")
    assert count(engine, MemberDataUpdate) == 0
    assert count(engine, RejectedDelivery) == 0


def test_a_quarantined_update_replays_once_fixed(client: FlaskClient, engine: Engine) -> None:
    from service.config import Settings
    from service.handlers.registry import handler_plan
    from service.platform.db import make_session_factory, transaction
    from service.webhooks.quarantine import replay

    assert post(client, update_body(completed_on="2018-13-01")).status_code == 422
    [rejected] = rows(engine, RejectedDelivery)

    with transaction(make_session_factory(engine)) as session:
        outcome = replay(
            session, rejected.id, handler_plan(Settings()), orjson.dumps(update_body())
        )

    assert outcome.result.outcome == "accepted"
    [update] = rows(engine, MemberDataUpdate)
    assert update.completed_on == "2018-07-18"
    assert update.received_at == rejected.received_at
    [run] = rows(engine, HandlerRun)
    assert run.data_update_id == update.id
    # MX's own retry of the fixed body is then a duplicate.
    accepted(client, update_body())
    assert count(engine, MemberDataUpdate) == 1


# POST /webhooks/mx.


@pytest.mark.parametrize(
    "body",
    [update_body(), {k: v for k, v in update_body().items() if k != "action"}],
    ids=["with-action", "without-action"],
)
def test_any_kind_endpoint_routes_a_data_update(
    client: FlaskClient, engine: Engine, body: dict[str, Any]
) -> None:
    accepted(client, body, ANY_URL)

    [update] = rows(engine, MemberDataUpdate)
    assert (update.member_guid, update.data_type, update.payload) == (MEMBER, "AGGREGATION", body)
    assert [run.handler for run in rows(engine, HandlerRun)] == ["data_ready"]
    assert count(engine, MemberEvent) == 0
    # The dedicated endpoint takes MX's retry as the same update.
    accepted(client, body)
    assert count(engine, MemberDataUpdate) == 1


def test_any_kind_endpoint_quarantines_a_bad_update_under_its_own_name(
    client: FlaskClient, engine: Engine
) -> None:
    body = {k: v for k, v in update_body().items() if k != "member_guid"}

    response = post(client, body, ANY_URL)

    details = assert_error_shape(response, 422, "validation_failed")
    assert [detail["field"] for detail in details] == ["member_guid"]
    [rejected] = rows(engine, RejectedDelivery)
    assert rejected.endpoint == "mx"
