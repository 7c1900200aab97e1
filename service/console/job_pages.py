"""Jobs: the list with the API's filters and keyset pages, and one job with its timeline and
handler runs."""

from __future__ import annotations

from flask import Response, request

from service.api.access import reading
from service.api.documented import PathParam, documented
from service.api.jobs import jobs_page as api_jobs_page
from service.api.query_params import parse_query
from service.console.blueprint import bp, kept_filters, link, page, present_args
from service.console.documentation import page_doc
from service.errors import NotFound
from service.jobs.queries import job_detail
from service.jobs.schemas import JobsQuery
from service.jobs.statuses import JOB_STATUSES


@bp.get("/console/jobs")
@documented(
    page_doc("Jobs, newest first, with the API's filters", JobsQuery, errors=("400", "401", "503"))
)
def jobs_page() -> Response:
    args = present_args(request.args)
    query = parse_query(JobsQuery, args)
    listing = api_jobs_page(query)
    filters = kept_filters(args, JobsQuery, "cursor")
    next_url = (
        link("console.jobs_page", **filters, cursor=listing.next_cursor)
        if listing.next_cursor
        else None
    )
    return page(
        "jobs.html",
        jobs=listing.jobs,
        query=query,
        args=args,
        statuses=JOB_STATUSES.values(),
        next_url=next_url,
        first_url=link("console.jobs_page", **filters) if query.cursor else None,
    )


@bp.get("/console/jobs/<path:guid>")
@documented(
    page_doc(
        "One job: current state, timeline with raw payloads, handler runs",
        path_params=(PathParam("guid", "the job's guid"),),
        errors=("401", "404", "503"),
    )
)
def job_page(guid: str) -> Response:
    with reading() as session:
        detail = job_detail(session, guid)
    if detail is None:
        raise NotFound(f"no job with guid {guid[:255]!r}")
    return page("job.html", detail=detail)
