"""Blueprint for members: current connection status, its history, the member's jobs and its
data updates."""

from __future__ import annotations

from flask import Blueprint, Response, request

from service.api.access import cursor_for, position_from, reading, require_bearer_token
from service.api.cursors import cursor_scope
from service.api.documented import API_AUTH, ApiDoc, PathParam, documented
from service.api.query_params import parse_query
from service.api.responses import json_response
from service.errors import NotFound
from service.jobs.queries import job_out, list_jobs
from service.jobs.schemas import JobFilters
from service.members.queries import (
    data_update_out,
    list_data_updates,
    list_members,
    member_handler_runs,
    member_out,
    member_with_history,
)
from service.members.schemas import (
    DataUpdateListOut,
    MemberDetailOut,
    MemberFilters,
    MemberListOut,
    MembersQuery,
)
from service.platform.types import DEFAULT_PAGE_SIZE, PageQuery

bp = Blueprint("members", __name__)

MEMBERS_LISTING = "members"
# The scope GET /members/<guid>/jobs signs its cursors with, so the first page of jobs served
# here continues there.
JOBS_LISTING = "jobs"
DATA_UPDATES_LISTING = "data-updates"


bp.before_request(require_bearer_token)


@bp.get("/members/<member_guid>")
@documented(
    ApiDoc(
        "One member: connection status, its history, and the first page of jobs",
        "members",
        API_AUTH,
        ok_model=MemberDetailOut,
        path_params=(PathParam("member_guid", "the member's guid"),),
        errors=("401", "404", "503"),
        description=(
            "Also the first page of the member's data updates; 404 only when no webhook "
            "has named the member."
        ),
    )
)
def get_member(member_guid: str) -> Response:
    jobs_filters = JobFilters(member_guid=member_guid[:255])
    jobs_scope = cursor_scope(JOBS_LISTING, jobs_filters.model_dump(mode="json"))
    with reading() as session:
        found = member_with_history(session, member_guid)
        updates, next_update = list_data_updates(session, member_guid, None, DEFAULT_PAGE_SIZE)
        if found is None and not updates:
            raise NotFound(f"no member with guid {member_guid[:255]!r}")
        jobs, next_jobs = list_jobs(session, jobs_filters, None, DEFAULT_PAGE_SIZE)
        page = [job_out(job) for job in jobs]
        runs = member_handler_runs(session, member_guid)
        update_page = [data_update_out(update) for update in updates]
    member, history = found if found is not None else (None, [])
    return json_response(
        MemberDetailOut(
            member=member,
            history=history,
            jobs=page,
            jobs_next_cursor=cursor_for(next_jobs, jobs_scope),
            handler_runs=runs,
            data_updates=update_page,
            data_updates_next_cursor=cursor_for(next_update, _data_updates_scope(member_guid)),
        )
    )


@bp.get("/members/<member_guid>/data-updates")
@documented(
    ApiDoc(
        "List one member's data-updated webhooks, newest first",
        "members",
        API_AUTH,
        ok_model=DataUpdateListOut,
        query_model=PageQuery,
        path_params=(PathParam("member_guid", "the member's guid"),),
        errors=("400", "401", "503"),
        description="Keyset-paginated on (completed_at, id); pass next_cursor back as cursor.",
    )
)
def get_member_data_updates(member_guid: str) -> Response:
    query = parse_query(PageQuery, request.args)
    scope = _data_updates_scope(member_guid)
    after = position_from(query.cursor, scope)
    with reading() as session:
        updates, next_position = list_data_updates(session, member_guid, after, query.limit)
        page = [data_update_out(update) for update in updates]
    return json_response(
        DataUpdateListOut(data_updates=page, next_cursor=cursor_for(next_position, scope))
    )


def _data_updates_scope(member_guid: str) -> str:
    return cursor_scope(DATA_UPDATES_LISTING, {"member_guid": member_guid[:255]})


@bp.get("/members")
@documented(
    ApiDoc(
        "List members by current connection status, newest first",
        "members",
        API_AUTH,
        ok_model=MemberListOut,
        query_model=MembersQuery,
        errors=("400", "401", "503"),
    )
)
def get_members() -> Response:
    return json_response(members_page(parse_query(MembersQuery, request.args)))


def members_page(query: MembersQuery) -> MemberListOut:
    """One page of members for the API and the console: a cursor from one continues in the other."""
    filters = MemberFilters.model_validate(
        query.model_dump(include=set(MemberFilters.model_fields))
    )
    scope = cursor_scope(MEMBERS_LISTING, filters.model_dump(mode="json"))
    after = position_from(query.cursor, scope)
    with reading() as session:
        members, next_position = list_members(session, filters, after, query.limit)
        page = [member_out(member) for member in members]
    return MemberListOut(members=page, next_cursor=cursor_for(next_position, scope))
