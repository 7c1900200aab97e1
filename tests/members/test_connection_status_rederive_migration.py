"""Migration 0006 re-reads every stored connection status as MX sent it: rows written the way the
code before it stored them (its own numbering from 7 up, its own name over MX's) come out holding
MX's id and name, and each member follows its current event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import app_state, bearer_header
from sqlalchemy import insert, null, select
from sqlalchemy.engine import Connection, Engine

from service.app import create_app
from service.config import Settings
from service.members.models import Member, MemberEvent
from service.platform import migrations as migrate
from service.platform.db import make_engine

BEFORE_0006 = "0005_handler_queue_indexes"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
EVENTS = MemberEvent.__table__
MEMBERS = Member.__table__


def guid(letter: str) -> str:
    return f"MBR-48d9a481-f2a2-7e13-2685-62869cf0d3{letter}{letter}"


def sent(member: str, **status: Any) -> dict[str, Any]:
    """A CONNECTION_STATUS body as MX sent it, with exactly the status fields given."""
    return {
        "action": "CHANGED",
        "type": "CONNECTION_STATUS",
        "connection_status_message": "Status changed at the institution.",
        "member_guid": member,
        "user_guid": "USR-eaf4ac68-d17d-5e9b-7b46-959a5b315a9e",
        **status,
    }


class OldRows:
    """Writes member_events and members as the code before 0006 did, on the 0005 schema."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.serial = 0

    def event(
        self,
        member: str,
        stored: tuple[int | None, str | None],
        payload: dict[str, Any] | None,
        at: datetime = T0,
    ) -> int:
        self.serial += 1
        values: dict[str, Any] = {
            "member_guid": member,
            "user_guid": "USR-eaf4ac68-d17d-5e9b-7b46-959a5b315a9e",
            "connection_status_id": stored[0],
            "connection_status": stored[1],
            "connection_status_message": "Status changed at the institution.",
            "event_at": at,
            "event_at_source": "received",
            "received_at": at,
            "dedup_key": f"{self.serial:064d}",
            "delivery_id": None,
            # A purged body is SQL NULL, not JSON null.
            "payload": payload if payload is not None else null(),
        }
        statement = insert(EVENTS).values(**values).returning(EVENTS.c.id)
        return int(self.connection.execute(statement).scalar_one())

    def member(
        self,
        member: str,
        current_event_id: int,
        stored: tuple[int | None, str | None],
        at: datetime = T0,
    ) -> None:
        self.connection.execute(
            insert(MEMBERS).values(
                guid=member,
                user_guid="USR-eaf4ac68-d17d-5e9b-7b46-959a5b315a9e",
                institution_guid=None,
                connection_status_id=stored[0],
                connection_status=stored[1],
                connection_status_message="Status changed at the institution.",
                event_at=at,
                current_event_id=current_event_id,
                received_at=at,
                first_received_at=at,
            )
        )

    def one(
        self, member: str, stored: tuple[int | None, str | None], payload: dict[str, Any] | None
    ) -> int:
        """A member with one event, current."""
        event_id = self.event(member, stored, payload)
        self.member(member, event_id, stored)
        return event_id


@pytest.fixture
def old_schema(database_url: str) -> Iterator[Engine]:
    """The database at 0005, empty; brought back to head whatever the test does."""
    migrate.downgrade(database_url, BEFORE_0006)
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()
        migrate.upgrade(database_url)


def events_after(engine: Engine) -> dict[int, tuple[int | None, str | None]]:
    with engine.connect() as connection:
        result = connection.execute(
            select(EVENTS.c.id, EVENTS.c.connection_status_id, EVENTS.c.connection_status)
        )
        return {row.id: (row.connection_status_id, row.connection_status) for row in result}


def members_after(engine: Engine) -> dict[str, tuple[int | None, str | None, int]]:
    with engine.connect() as connection:
        result = connection.execute(
            select(
                MEMBERS.c.guid,
                MEMBERS.c.connection_status_id,
                MEMBERS.c.connection_status,
                MEMBERS.c.current_event_id,
            )
        )
        return {
            row.guid: (row.connection_status_id, row.connection_status, row.current_event_id)
            for row in result
        }


def test_upgrade_restores_mx_s_ids_and_names_in_events_and_members(
    old_schema: Engine, database_url: str
) -> None:
    a, b, c, d, e, f, g, h = (guid(letter) for letter in "abcdefgh")
    with old_schema.begin() as connection:
        old = OldRows(connection)
        # MX sent IMPEDED (7); the old table called 7 DEGRADED and wrote that over the name.
        impeded = old.one(
            a, (7, "DEGRADED"), sent(a, connection_status_id=7, connection_status="IMPEDED")
        )
        # MX sent id 19 alone (EXPIRED); the old table called 19 PENDING.
        expired = old.one(b, (19, "PENDING"), sent(b, connection_status_id=19))
        # The body is gone: the id is all there is, and MX calls 9 DEGRADED.
        purged = old.one(c, (9, "DISCONTINUED"), None)
        # MX sent the name alone; the old table numbered IMPEDED 20.
        named = old.one(d, (20, "IMPEDED"), sent(d, connection_status="IMPEDED"))
        # MX's id and name disagree with each other: both are kept as MX sent them.
        disagreeing = old.one(
            e, (9, "DISCONTINUED"), sent(e, connection_status_id=9, connection_status="CHALLENGED")
        )
        # Unchanged between the tables.
        challenged = old.one(
            f, (3, "CHALLENGED"), sent(f, connection_status_id=3, connection_status="CHALLENGED")
        )
        # The old table stopped at 20: 21 was stored as sent.
        pending = old.one(
            g, (21, "PENDING"), sent(g, connection_status_id=21, connection_status="PENDING")
        )
        # The old table upper-cased a known name; MX's spelling comes back.
        lower = old.one(h, (5, "LOCKED"), sent(h, connection_status="locked"))

    migrate.upgrade(database_url)

    events = events_after(old_schema)
    assert events == {
        impeded: (7, "IMPEDED"),
        expired: (19, "EXPIRED"),
        purged: (9, "DEGRADED"),
        named: (7, "IMPEDED"),
        disagreeing: (9, "CHALLENGED"),
        challenged: (3, "CHALLENGED"),
        pending: (21, "PENDING"),
        lower: (5, "locked"),
    }
    members = members_after(old_schema)
    assert members == {
        a: (7, "IMPEDED", impeded),
        b: (19, "EXPIRED", expired),
        c: (9, "DEGRADED", purged),
        d: (7, "IMPEDED", named),
        e: (9, "CHALLENGED", disagreeing),
        f: (3, "CHALLENGED", challenged),
        g: (21, "PENDING", pending),
        h: (5, "locked", lower),
    }


def test_each_member_follows_its_current_event_not_its_latest_row(
    old_schema: Engine, database_url: str
) -> None:
    member = guid("a")
    with old_schema.begin() as connection:
        old = OldRows(connection)
        # The newer change (MX sent IMPAIRED, 20) is current; the old table called 20 IMPEDED.
        current = old.event(
            member,
            (20, "IMPEDED"),
            sent(member, connection_status_id=20, connection_status="IMPAIRED"),
            T0 + timedelta(minutes=5),
        )
        # An older change that arrived later has the higher id but is history only.
        late = old.event(
            member,
            (18, "IMPAIRED"),
            sent(member, connection_status_id=18, connection_status="RESUMED"),
            T0 + timedelta(minutes=1),
        )
        old.member(member, current, (20, "IMPEDED"), T0 + timedelta(minutes=5))

    migrate.upgrade(database_url)

    assert events_after(old_schema) == {current: (20, "IMPAIRED"), late: (18, "RESUMED")}
    assert members_after(old_schema) == {member: (20, "IMPAIRED", current)}


def test_every_row_is_rederived_past_one_batch(old_schema: Engine, database_url: str) -> None:
    member = guid("b")
    total = 1203  # more than the migration's batch of 1000
    with old_schema.begin() as connection:
        old = OldRows(connection)
        ids = [
            old.event(
                member,
                (19, "PENDING"),
                sent(member, connection_status_id=19, connection_status_message=f"n{index}"),
                T0 + timedelta(seconds=index),
            )
            for index in range(total)
        ]
        old.member(member, ids[-1], (19, "PENDING"), T0 + timedelta(seconds=total - 1))

    migrate.upgrade(database_url)

    events = events_after(old_schema)
    assert len(events) == total
    assert set(events.values()) == {(19, "EXPIRED")}
    assert members_after(old_schema) == {member: (19, "EXPIRED", ids[-1])}


def test_the_service_reads_the_rederived_rows(
    old_schema: Engine, database_url: str, settings: Settings
) -> None:
    member = guid("c")
    with old_schema.begin() as connection:
        OldRows(connection).one(
            member,
            (7, "DEGRADED"),
            sent(member, connection_status_id=7, connection_status="IMPEDED"),
        )

    migrate.upgrade(database_url)

    app = create_app(settings)
    try:
        response = app.test_client().get(f"/members/{member}", headers=bearer_header())
    finally:
        app_state(app).engine.dispose()
    assert response.status_code == 200, response.get_data(as_text=True)
    document = response.get_json()
    current = document["member"]
    assert (current["connection_status_id"], current["connection_status"]) == (7, "IMPEDED")
    assert current["end_user_actionable"] is True
    assert (current["institution_code"], current["deleted_at"]) == (None, None)
    [entry] = document["history"]
    assert (entry["source"], entry["action"], entry["callback_payload"]) == (
        "connection_status",
        None,
        None,
    )
    assert (entry["connection_status_id"], entry["connection_status"]) == (7, "IMPEDED")


@pytest.mark.parametrize(
    "stored",
    [(42, "RECONNECTING"), (None, "RECONNECTING")],
    ids=["unknown-id-and-name", "unknown-name-alone"],
)
def test_a_purged_row_keeps_a_name_mx_s_table_does_not_have(
    old_schema: Engine, database_url: str, stored: tuple[int | None, str]
) -> None:
    # A status MX added after both tables was stored as sent by the old code too; with the body
    # purged, nothing says the stored name is wrong, and MX's table has no name to put instead.
    member = guid("d")
    with old_schema.begin() as connection:
        event = OldRows(connection).one(member, stored, None)

    migrate.upgrade(database_url)

    assert events_after(old_schema) == {event: stored}
    assert members_after(old_schema) == {member: (*stored, event)}
