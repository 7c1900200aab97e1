"""Members: the list by connection status, and one member with its connection history, jobs,
data updates and handler runs."""

from __future__ import annotations

from flask import Response, request

from service.api.access import reading
from service.api.documented import PathParam, documented
from service.api.members import members_page as api_members_page
from service.api.query_params import parse_query
from service.console.blueprint import bp, kept_filters, link, page, present_args
from service.console.documentation import page_doc
from service.errors import NotFound
from service.jobs.queries import job_out, list_jobs
from service.jobs.schemas import JobFilters
from service.members.queries import (
    data_update_out,
    list_data_updates,
    member_handler_runs,
    member_with_history,
)
from service.members.schemas import MembersQuery
from service.members.statuses import CONNECTION_STATUSES
from service.platform.types import DEFAULT_PAGE_SIZE


@bp.get("/console/members")
@documented(
    page_doc("Members by current connection status", MembersQuery, errors=("400", "401", "503"))
)
def members_page() -> Response:
    args = present_args(request.args)
    query = parse_query(MembersQuery, args)
    listing = api_members_page(query)
    kept = kept_filters(args, MembersQuery, "cursor")
    next_cursor = listing.next_cursor
    return page(
        "members.html",
        members=listing.members,
        args=args,
        statuses=CONNECTION_STATUSES.values(),
        next_url=link("console.members_page", **kept, cursor=next_cursor) if next_cursor else None,
        first_url=link("console.members_page", **kept) if query.cursor else None,
    )


@bp.get("/console/members/<guid>")
@documented(
    page_doc(
        "One member: connection status and its history, jobs, data updates, handler runs",
        path_params=(PathParam("guid", "the member's guid"),),
        errors=("401", "404", "503"),
    )
)
def member_page(guid: str) -> Response:
    with reading() as session:
        found = member_with_history(session, guid)
        jobs, more_jobs = list_jobs(
            session, JobFilters(member_guid=guid[:255]), None, DEFAULT_PAGE_SIZE
        )
        updates, _ = list_data_updates(session, guid, None, DEFAULT_PAGE_SIZE)
        # As the API: a member is known once any webhook named it.
        if found is None and not jobs and not updates:
            raise NotFound(f"no member with guid {guid[:255]!r}")
        runs = member_handler_runs(session, guid)
        job_rows = [job_out(job) for job in jobs]
        update_rows = [data_update_out(update) for update in updates]
    member, history = found if found is not None else (None, [])
    return page(
        "member.html",
        guid_value=guid,
        member=member,
        history=list(reversed(history)),
        jobs=job_rows,
        more_jobs_url=link("console.jobs_page", member_guid=guid) if more_jobs else None,
        updates=update_rows,
        runs=list(reversed(runs)),
    )
