"""Read-side queries over members and their connection-status history, as plain functions.

Lists are keyset-paginated like the job lists: newest event_at first, guid breaking ties.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, literal, select, tuple_
from sqlalchemy.orm import Session

from service.members.models import Member, MemberDataUpdate, MemberEvent
from service.members.schemas import DataUpdateOut, MemberEventOut, MemberFilters, MemberOut
from service.members.statuses import connection_status
from service.outbox.models import HandlerRun
from service.outbox.schemas import HandlerRunOut
from service.platform.db import UTCDateTime
from service.platform.models import columns_of
from service.platform.pages import Position, page_of


def member_out(member: Member) -> MemberOut:
    known = connection_status(member.connection_status_id, member.connection_status)
    actionable = known.end_user_actionable if known else False
    return MemberOut.model_validate({**columns_of(member), "end_user_actionable": actionable})


def member_event_out(event: MemberEvent, current_event_id: int) -> MemberEventOut:
    current = event.id == current_event_id
    return MemberEventOut.model_validate(
        {**columns_of(event), "source": event.kind, "current": current}
    )


def member_with_history(
    session: Session, guid: str
) -> tuple[MemberOut, list[MemberEventOut]] | None:
    """One round trip: every member row has at least its current event, so no rows, no member."""
    rows = session.execute(
        select(Member, MemberEvent)
        .join(MemberEvent, MemberEvent.member_guid == Member.guid)
        .where(Member.guid == guid)
        .order_by(MemberEvent.event_at.asc(), MemberEvent.id.asc())
    ).all()
    if not rows:
        return None
    member = rows[0][0]
    return member_out(member), [
        member_event_out(event, member.current_event_id) for _, event in rows
    ]


MEMBER_RUNS_LIMIT = 100


def member_handler_runs(session: Session, guid: str) -> list[HandlerRunOut]:
    """The member's latest runs, oldest first: its own and those of its jobs' events."""
    latest = (
        select(HandlerRun)
        .where(HandlerRun.member_guid == guid)
        .order_by(HandlerRun.id.desc())
        .limit(MEMBER_RUNS_LIMIT)
    )
    runs = sorted(session.scalars(latest), key=lambda run: run.id)
    return [HandlerRunOut.model_validate(run, from_attributes=True) for run in runs]


def data_update_out(update: MemberDataUpdate) -> DataUpdateOut:
    return DataUpdateOut.model_validate({**columns_of(update), "type": update.data_type})


def list_data_updates(
    session: Session, member_guid: str, after: Position | None, limit: int
) -> tuple[list[MemberDataUpdate], Position | None]:
    """One page of a member's data updates, newest first by (event_at, id), both descending."""
    conditions = [MemberDataUpdate.member_guid == member_guid]
    if after is not None:
        after_key = (literal(after.at, UTCDateTime()), literal(int(after.key)))
        conditions.append(
            tuple_(MemberDataUpdate.event_at, MemberDataUpdate.id) < tuple_(*after_key)
        )
    statement = (
        select(MemberDataUpdate)
        .where(*conditions)
        .order_by(MemberDataUpdate.event_at.desc(), MemberDataUpdate.id.desc())
        .limit(limit + 1)
    )
    return page_of(
        list(session.scalars(statement)),
        limit,
        lambda update: Position(update.event_at, update.id),
    )


def member_position(member: Member) -> Position:
    return Position(member.event_at, member.guid)


def list_members(
    session: Session, filters: MemberFilters, after: Position | None, limit: int
) -> tuple[list[Member], Position | None]:
    """One page of members, newest first by (event_at, guid), both descending."""
    return page_of(
        list(session.scalars(members_page(filters, after, limit + 1))), limit, member_position
    )


def members_page(filters: MemberFilters, after: Position | None, limit: int) -> Select[Member]:
    conditions = _member_conditions(filters)
    if after is not None:
        # A row comparison is one index condition, as for jobs.
        after_key = (literal(after.at, UTCDateTime()), literal(str(after.key)))
        conditions.append(tuple_(Member.event_at, Member.guid) < tuple_(*after_key))
    return (
        select(Member)
        .where(*conditions)
        .order_by(Member.event_at.desc(), Member.guid.desc())
        .limit(limit)
    )


def _member_conditions(filters: MemberFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        column == value
        for column, value in (
            (Member.user_guid, filters.user_guid),
            (Member.institution_guid, filters.institution_guid),
        )
        if value is not None
    ]
    if filters.connection_status:
        conditions.append(Member.connection_status_id.in_(filters.connection_status))
    return conditions


def member_guids_with_prefix(session: Session, prefix: str, limit: int) -> list[str]:
    """An index range from the prefix, bounded by `limit` (see jobs.queries for why)."""
    rows = session.scalars(
        select(Member.guid).where(Member.guid >= prefix).order_by(Member.guid).limit(limit)
    )
    return [guid for guid in rows if guid.startswith(prefix)]
