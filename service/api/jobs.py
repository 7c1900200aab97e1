"""Blueprint for the read-only query API; every route here needs a bearer token."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from service.api.access import cursor_for, position_from, reading, require_bearer_token
from service.api.cursors import cursor_scope
from service.api.documented import API_AUTH, ApiDoc, PathParam, documented
from service.api.examples import example_job_detail
from service.api.query_params import parse_query
from service.api.responses import json_response
from service.errors import BadRequest, FieldProblem, NotFound
from service.jobs.queries import job_detail, job_out, job_stats, list_jobs, stats_window
from service.jobs.rollups import counted_window
from service.jobs.schemas import (
    JobDetailOut,
    JobFilters,
    JobListOut,
    JobsQuery,
    StatsOut,
    StatsQuery,
)
from service.platform.types import PageQuery
from service.webhooks.quarantine import rejected_delivery, rejected_page
from service.webhooks.schemas import RejectedDeliveryListOut, RejectedDeliveryOut

bp = Blueprint("api", __name__)

JOBS_LISTING = "jobs"
REJECTED_LISTING = "rejected-deliveries"
# Ids are 64-bit; a larger one names nothing, and drivers refuse it.
MAX_ID = 2**63 - 1


bp.before_request(require_bearer_token)


@bp.get("/jobs/<path:guid>")
@documented(
    ApiDoc(
        "One job with its history and handler runs",
        "jobs",
        API_AUTH,
        ok_model=JobDetailOut,
        ok_example=example_job_detail(),
        path_params=(PathParam("guid", "the job's guid"),),
        errors=("401", "404", "503"),
        description="History is ordered by updated_at; `current` marks the job's state.",
    )
)
def get_job(guid: str) -> Response:
    with reading() as session:
        detail = job_detail(session, guid)
    if detail is None:
        raise NotFound(f"no job with guid {guid[:255]!r}")
    return json_response(detail)


@bp.get("/jobs")
@documented(
    ApiDoc(
        "List jobs, newest first",
        "jobs",
        API_AUTH,
        ok_model=JobListOut,
        query_model=JobsQuery,
        errors=("400", "401", "503"),
        description=(
            "Keyset-paginated on (updated_at, guid), newest first; jobs without updated_at "
            "come last. Pass next_cursor back as cursor with the same filters."
        ),
    )
)
def get_jobs() -> Response:
    return json_response(jobs_page(parse_query(JobsQuery, request.args)))


@bp.get("/members/<member_guid>/jobs")
@documented(
    ApiDoc(
        "List one member's jobs, newest first",
        "jobs",
        API_AUTH,
        ok_model=JobListOut,
        query_model=JobsQuery,
        query_exclude=frozenset({"member_guid"}),
        path_params=(PathParam("member_guid", "the member's guid"),),
        errors=("400", "401", "503"),
    )
)
def get_member_jobs(member_guid: str) -> Response:
    # The path names the member; a member_guid in the query string cannot widen or change it.
    query = parse_query(JobsQuery, request.args, {"member_guid": member_guid})
    return json_response(jobs_page(query))


@bp.get("/stats")
@documented(
    ApiDoc(
        "Status changes per status and per institution over a window",
        "jobs",
        API_AUTH,
        ok_model=StatsOut,
        query_model=StatsQuery,
        errors=("400", "401", "503"),
        description=(
            "Counts events whose updated_at falls in [since, until). Unless exact=true, a window "
            "longer than an hour is widened to whole UTC hours, one longer than a week to whole "
            "UTC days; since and until in the answer are the window counted."
        ),
    )
)
def get_stats() -> Response:
    query = parse_query(StatsQuery, request.args)
    now = datetime.now(UTC)
    since, until = stats_window(query.since, query.until, now)
    if since >= until:
        raise BadRequest(
            "invalid query parameters", [FieldProblem("since", "must be earlier than until")]
        )
    since, until = counted_window(since, until, query.exact)
    with reading() as session:
        stats = job_stats(session, since, until, query.status, query.top, now)
    return json_response(stats)


@bp.get("/rejected-deliveries")
@documented(
    ApiDoc(
        "Quarantined bodies that failed validation, newest first",
        "quarantine",
        API_AUTH,
        ok_model=RejectedDeliveryListOut,
        query_model=PageQuery,
        errors=("400", "401", "503"),
    )
)
def get_rejected_deliveries() -> Response:
    return json_response(rejected_deliveries_page(parse_query(PageQuery, request.args)))


def rejected_deliveries_page(query: PageQuery) -> RejectedDeliveryListOut:
    """One page of quarantined deliveries for the API and the console."""
    scope = cursor_scope(REJECTED_LISTING, {})
    after = position_from(query.cursor, scope)
    with reading() as session:
        page, next_position = rejected_page(session, after, query.limit)
    return RejectedDeliveryListOut(
        rejected_deliveries=page, next_cursor=cursor_for(next_position, scope)
    )


@bp.get("/rejected-deliveries/<int:rejected_id>")
@documented(
    ApiDoc(
        "One quarantined delivery with its whole body",
        "quarantine",
        API_AUTH,
        ok_model=RejectedDeliveryOut,
        path_params=(
            PathParam("id", "the quarantined delivery's id", {"type": "integer", "minimum": 1}),
        ),
        errors=("401", "404", "503"),
    )
)
def get_rejected_delivery(rejected_id: int) -> Response:
    with reading() as session:
        found = rejected_delivery(session, rejected_id) if rejected_id <= MAX_ID else None
    if found is None:
        raise NotFound(f"no quarantined delivery with id {rejected_id}")
    return json_response(found)


def jobs_page(query: JobsQuery) -> JobListOut:
    filters = JobFilters.model_validate(query.model_dump(include=set(JobFilters.model_fields)))
    scope = cursor_scope(JOBS_LISTING, filters.model_dump(mode="json"))
    after = position_from(query.cursor, scope)
    with reading() as session:
        jobs, next_position = list_jobs(session, filters, after, query.limit)
        page = [job_out(job) for job in jobs]
    return JobListOut(jobs=page, next_cursor=cursor_for(next_position, scope))
