"""Blueprint for members: current connection status, its history, and the member's jobs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from service.auth import BEARER_CHALLENGE, bearer_matches
from service.connection_schemas import (
    MemberDetailOut,
    MemberFilters,
    MemberListOut,
    MembersQuery,
)
from service.context import current_state
from service.errors import BadRequest, FieldProblem, NotFound, Unauthorized
from service.member_queries import (
    list_members,
    member_handler_runs,
    member_out,
    member_with_history,
)
from service.pagination import (
    CursorError,
    Position,
    cursor_key,
    cursor_scope,
    decode_cursor,
    encode_cursor,
)
from service.queries import job_out, list_jobs
from service.query_params import parse_query
from service.responses import json_response
from service.schemas import DEFAULT_PAGE_SIZE, JobFilters

bp = Blueprint("members", __name__)

MEMBERS_LISTING = "members"
# The scope GET /members/<guid>/jobs signs its cursors with, so the first page of jobs served
# here continues there.
JOBS_LISTING = "jobs"


@bp.before_request
def require_bearer_token() -> None:
    if not bearer_matches(
        request.headers.get("Authorization"), current_state().settings.api_tokens
    ):
        raise Unauthorized("a valid bearer token is required", BEARER_CHALLENGE)


@bp.get("/members/<member_guid>")
def get_member(member_guid: str) -> Response:
    jobs_filters = JobFilters(member_guid=member_guid[:255])
    jobs_scope = cursor_scope(JOBS_LISTING, jobs_filters.model_dump(mode="json"))
    with _reading() as session:
        found = member_with_history(session, member_guid)
        if found is None:
            raise NotFound(f"no member with guid {member_guid[:255]!r}")
        jobs, next_jobs = list_jobs(session, jobs_filters, None, DEFAULT_PAGE_SIZE)
        page = [job_out(job) for job in jobs]
        runs = member_handler_runs(session, member_guid)
    member, history = found
    return json_response(
        MemberDetailOut(
            member=member,
            history=history,
            jobs=page,
            jobs_next_cursor=_cursor_for(next_jobs, jobs_scope),
            handler_runs=runs,
        )
    )


@bp.get("/members")
def get_members() -> Response:
    query = parse_query(MembersQuery, request.args)
    filters = MemberFilters.model_validate(
        query.model_dump(include=set(MemberFilters.model_fields))
    )
    scope = cursor_scope(MEMBERS_LISTING, filters.model_dump(mode="json"))
    after = _position_from(query.cursor, scope)
    with _reading() as session:
        members, next_position = list_members(session, filters, after, query.limit)
        page = [member_out(member) for member in members]
    return json_response(MemberListOut(members=page, next_cursor=_cursor_for(next_position, scope)))


@contextmanager
def _reading() -> Iterator[Session]:
    """Read-only work in autocommit, as the job queries do."""
    state = current_state()
    with state.sessions(
        bind=state.engine.execution_options(isolation_level="AUTOCOMMIT")
    ) as session:
        yield session


def _position_from(cursor: str | None, scope: str) -> Position | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, scope, _cursor_key())
    except CursorError as error:
        raise BadRequest("invalid cursor", [FieldProblem("cursor", str(error))]) from None


def _cursor_for(position: Position | None, scope: str) -> str | None:
    return encode_cursor(position, scope, _cursor_key()) if position is not None else None


def _cursor_key() -> bytes:
    return cursor_key(current_state().settings.secret_key)
