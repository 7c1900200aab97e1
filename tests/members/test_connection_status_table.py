"""MX's connection-status table, pinned: each id and name as MX's own code numbers them, what each
one stores when it arrives through POST /webhooks/mx/connection-status, which of them queue a
handler, and what happens when an id and a name that MX sent disagree with the table."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import basic_header, bearer_header
from db_rows import count, rows
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from service.members.models import Member, MemberEvent
from service.members.statuses import CONNECTION_STATUSES
from service.outbox.models import HandlerRun

URL = "/webhooks/mx/connection-status"
MEMBER = "MBR-48d9a481-f2a2-7e13-2685-62869cf0d33a"
USER = "USR-eaf4ac68-d17d-5e9b-7b46-959a5b315a9e"
DISAGREEMENTS = "jobhooks_connection_status_table_disagreements_total"

# MX's numbering, written out by hand (mxenabled/connect-widget, src/const/Statuses.js): the
# module must match this, not the other way round.
MX_CONNECTION_STATUSES: dict[int, str] = {
    0: "CREATED",
    1: "PREVENTED",
    2: "DENIED",
    3: "CHALLENGED",
    4: "REJECTED",
    5: "LOCKED",
    6: "CONNECTED",
    7: "IMPEDED",
    8: "RECONNECTED",
    9: "DEGRADED",
    10: "DISCONNECTED",
    11: "DISCONTINUED",
    12: "CLOSED",
    13: "DELAYED",
    14: "FAILED",
    15: "UPDATED",
    16: "DISABLED",
    17: "IMPORTED",
    18: "RESUMED",
    19: "EXPIRED",
    20: "IMPAIRED",
    21: "PENDING",
}
# The eight statuses MX sends CONNECTION_STATUS for, each with the one handler it queues.
ACTIONABLE: dict[str, str] = {
    "CHALLENGED": "mfa_prompt",
    "DENIED": "user_action_required",
    "EXPIRED": "user_action_required",
    "IMPAIRED": "user_action_required",
    "IMPEDED": "user_action_required",
    "LOCKED": "user_action_required",
    "PREVENTED": "user_action_required",
    "REJECTED": "user_action_required",
}
ALL_IDS = sorted(MX_CONNECTION_STATUSES)
ID_NAMES = [f"{code}-{MX_CONNECTION_STATUSES[code]}" for code in ALL_IDS]


def sent(**status: Any) -> dict[str, Any]:
    """A CONNECTION_STATUS body carrying exactly the status fields given."""
    return {
        "action": "CHANGED",
        "type": "CONNECTION_STATUS",
        "connection_status_message": "Status changed at the institution.",
        "member_guid": MEMBER,
        "user_guid": USER,
        **status,
    }


def post(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post(URL, json=body, headers=basic_header())
    assert response.status_code == 204, response.get_data(as_text=True)


def stored(engine: Engine) -> tuple[tuple[int | None, str | None], tuple[int | None, str | None]]:
    """(id, name) of the one event and of the member's current state."""
    [event] = rows(engine, MemberEvent)
    [member] = rows(engine, Member)
    assert member.current_event_id == event.id
    return (
        (event.connection_status_id, event.connection_status),
        (member.connection_status_id, member.connection_status),
    )


def disagreements(client: FlaskClient, code: int, trusted_name: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    pattern = re.compile(
        rf"^{DISAGREEMENTS}\{{(?=[^}}]*connection_status_id=\"{code}\")"
        rf"(?=[^}}]*trusted_name=\"{trusted_name}\")[^}}]*\}} (\S+)$",
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(text))


def test_the_table_is_mx_s_numbering() -> None:
    assert {code: status.name for code, status in CONNECTION_STATUSES.items()} == (
        MX_CONNECTION_STATUSES
    )


def test_the_table_marks_exactly_the_eight_webhook_statuses_actionable() -> None:
    actionable = {
        status.name: status.handlers
        for status in CONNECTION_STATUSES.values()
        if status.end_user_actionable
    }
    assert actionable == {name: (handler,) for name, handler in ACTIONABLE.items()}


@pytest.mark.parametrize("code", ALL_IDS, ids=ID_NAMES)
def test_an_id_sent_alone_is_stored_with_mx_s_name(
    client: FlaskClient, engine: Engine, code: int
) -> None:
    post(client, sent(connection_status_id=code))

    expected = (code, MX_CONNECTION_STATUSES[code])
    assert stored(engine) == (expected, expected)


@pytest.mark.parametrize("code", ALL_IDS, ids=ID_NAMES)
def test_an_id_sent_with_its_name_is_stored_as_sent(
    client: FlaskClient, engine: Engine, code: int
) -> None:
    name = MX_CONNECTION_STATUSES[code]
    body = sent(connection_status_id=code, connection_status=name)

    post(client, body)

    assert stored(engine) == ((code, name), (code, name))
    [event] = rows(engine, MemberEvent)
    assert event.payload == body


@pytest.mark.parametrize("code", ALL_IDS, ids=ID_NAMES)
def test_only_the_eight_actionable_statuses_queue_their_handler(
    client: FlaskClient, engine: Engine, code: int
) -> None:
    name = MX_CONNECTION_STATUSES[code]

    post(client, sent(connection_status_id=code, connection_status=name))

    [event] = rows(engine, MemberEvent)
    runs = rows(engine, HandlerRun)
    expected = [ACTIONABLE[name]] if name in ACTIONABLE else []
    assert [run.handler for run in runs] == expected
    for run in runs:
        assert (run.member_event_id, run.member_guid, run.state) == (event.id, MEMBER, "pending")


@pytest.mark.parametrize("code", ALL_IDS, ids=ID_NAMES)
def test_the_name_alone_queues_the_same_handler_as_the_pair(
    client: FlaskClient, engine: Engine, code: int
) -> None:
    name = MX_CONNECTION_STATUSES[code]

    post(client, sent(connection_status=name))

    assert stored(engine)[1] == (code, name)
    expected = [ACTIONABLE[name]] if name in ACTIONABLE else []
    assert [run.handler for run in rows(engine, HandlerRun)] == expected


def test_degraded_id_named_challenged_is_stored_as_sent_prompts_and_is_counted(
    client: FlaskClient, engine: Engine
) -> None:
    before = disagreements(client, 9, "CHALLENGED")

    post(client, sent(connection_status_id=9, connection_status="CHALLENGED"))

    assert stored(engine) == ((9, "CHALLENGED"), (9, "CHALLENGED"))
    [run] = rows(engine, HandlerRun)
    assert run.handler == "mfa_prompt"
    assert disagreements(client, 9, "CHALLENGED") == before + 1
    # The API calls it what the name says: the user has something to do.
    member = client.get(f"/members/{MEMBER}", headers=bearer_header()).get_json()["member"]
    assert (member["connection_status_id"], member["connection_status"]) == (9, "CHALLENGED")
    assert member["end_user_actionable"] is True


def test_challenged_id_named_connected_queues_nothing_and_is_counted(
    client: FlaskClient, engine: Engine
) -> None:
    before = disagreements(client, 3, "CONNECTED")

    post(client, sent(connection_status_id=3, connection_status="CONNECTED"))

    assert stored(engine) == ((3, "CONNECTED"), (3, "CONNECTED"))
    assert count(engine, HandlerRun) == 0
    assert disagreements(client, 3, "CONNECTED") == before + 1


@pytest.mark.parametrize(
    ("code", "name", "handler"),
    [(7, "DEGRADED", None), (9, "IMPEDED", "user_action_required"), (19, "PENDING", None)],
    ids=["impeded-id-named-degraded", "degraded-id-named-impeded", "expired-id-named-pending"],
)
def test_the_name_decides_the_handler_whenever_id_and_name_disagree(
    client: FlaskClient, engine: Engine, code: int, name: str, handler: str | None
) -> None:
    before = disagreements(client, code, name)

    post(client, sent(connection_status_id=code, connection_status=name))

    assert stored(engine) == ((code, name), (code, name))
    assert [run.handler for run in rows(engine, HandlerRun)] == ([handler] if handler else [])
    assert disagreements(client, code, name) == before + 1


def test_a_matching_pair_is_not_counted_as_a_disagreement(
    client: FlaskClient, engine: Engine
) -> None:
    text_before = client.get("/metrics").get_data(as_text=True)
    before = {line for line in text_before.splitlines() if line.startswith(DISAGREEMENTS + "{")}

    post(client, sent(connection_status_id=3, connection_status="CHALLENGED"))
    post(client, sent(member_guid="MBR-only-an-id", connection_status_id=9))
    post(client, sent(member_guid="MBR-only-a-name", connection_status="DEGRADED"))

    text_after = client.get("/metrics").get_data(as_text=True)
    after = {line for line in text_after.splitlines() if line.startswith(DISAGREEMENTS + "{")}
    assert after == before
    assert count(engine, MemberEvent) == 3
