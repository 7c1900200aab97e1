"""Blueprint for the read-only query API; every route here needs a bearer token."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from service.api.access import cursor_for, position_from, reading, require_bearer_token
from service.api.cursors import (
    cursor_scope,
)
from service.api.query_params import parse_query
from service.api.responses import json_response
from service.errors import BadRequest, FieldProblem, NotFound
from service.jobs.queries import (
    job_detail,
    job_out,
    job_stats,
    list_jobs,
    list_rejected_deliveries,
    rejected_delivery_out,
    stats_window,
)
from service.jobs.schemas import JobFilters, JobListOut, JobsQuery, StatsQuery
from service.platform.types import PageQuery
from service.webhooks.schemas import RejectedDeliveryListOut

bp = Blueprint("api", __name__)

JOBS_LISTING = "jobs"
REJECTED_LISTING = "rejected-deliveries"


bp.before_request(require_bearer_token)


@bp.get("/jobs/<path:guid>")
def get_job(guid: str) -> Response:
    with reading() as session:
        detail = job_detail(session, guid)
    if detail is None:
        raise NotFound(f"no job with guid {guid[:255]!r}")
    return json_response(detail)


@bp.get("/jobs")
def get_jobs() -> Response:
    return json_response(_jobs_page(parse_query(JobsQuery, request.args)))


@bp.get("/members/<member_guid>/jobs")
def get_member_jobs(member_guid: str) -> Response:
    # The path names the member; a member_guid in the query string cannot widen or change it.
    query = parse_query(JobsQuery, request.args, {"member_guid": member_guid})
    return json_response(_jobs_page(query))


@bp.get("/stats")
def get_stats() -> Response:
    query = parse_query(StatsQuery, request.args)
    since, until = stats_window(query.since, query.until, datetime.now(UTC))
    if since >= until:
        raise BadRequest(
            "invalid query parameters", [FieldProblem("since", "must be earlier than until")]
        )
    with reading() as session:
        stats = job_stats(session, since, until, query.status, query.top)
    return json_response(stats)


@bp.get("/rejected-deliveries")
def get_rejected_deliveries() -> Response:
    query = parse_query(PageQuery, request.args)
    scope = cursor_scope(REJECTED_LISTING, {})
    after = position_from(query.cursor, scope)
    with reading() as session:
        rows, next_position = list_rejected_deliveries(session, after, query.limit)
        page = [rejected_delivery_out(row) for row in rows]
    return json_response(
        RejectedDeliveryListOut(
            rejected_deliveries=page, next_cursor=cursor_for(next_position, scope)
        )
    )


def _jobs_page(query: JobsQuery) -> JobListOut:
    filters = JobFilters.model_validate(query.model_dump(include=set(JobFilters.model_fields)))
    scope = cursor_scope(JOBS_LISTING, filters.model_dump(mode="json"))
    after = position_from(query.cursor, scope)
    with reading() as session:
        jobs, next_position = list_jobs(session, filters, after, query.limit)
        page = [job_out(job) for job in jobs]
    return JobListOut(jobs=page, next_cursor=cursor_for(next_position, scope))
