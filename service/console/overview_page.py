"""GET /: the overview, each number a link to the list behind it; and the search box's target."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, g, request
from pydantic import BaseModel, ConfigDict

from service.api.access import reading
from service.api.documented import documented
from service.console.blueprint import bp, link, page, see_other
from service.console.chart import bar_chart
from service.console.documentation import page_doc
from service.console.formatting import job_status_tone
from service.console.overview import HOUR, load_overview
from service.console.search import Kind, Match, find, the_one
from service.handlers.registry import handler_names
from service.jobs.schemas import StatusCountOut
from service.platform.types import format_utc


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    q: str = ""


@bp.get("/")
@documented(page_doc("Console overview: status changes, queue health, dead runs, quarantine"))
def overview_page() -> Response:
    now = g.console_now
    with reading() as session:
        overview = load_overview(session, now, sorted(handler_names()))
    return page(
        "overview.html",
        overview=overview,
        chart=bar_chart(_status_rows(overview.day, format_utc(overview.day_since))),
        day_since=format_utc(overview.day_since),
        hour_since=format_utc(now - HOUR),
        lag_window=int(timedelta(minutes=5).total_seconds() // 60),
    )


def _status_rows(counts: list[StatusCountOut], since: str) -> list[tuple[str, int, str, str]]:
    return [
        (
            f"{item.status_name or 'status'} ({item.status})",
            item.count,
            job_status_tone(item.status),
            link("console.jobs_page", status=item.status, updated_since=since),
        )
        for item in counts
    ]


@bp.get("/console/search")
@documented(page_doc("Find a job, member or user by guid or guid prefix", SearchQuery))
def search_page() -> Response:
    text = request.args.get("q", "")
    with reading() as session:
        matches = find(session, text)
    chosen = the_one(matches)
    if chosen is not None:
        return see_other(match_url(chosen))
    return page("search.html", text=text, matches=matches, url_of=match_url)


def match_url(match: Match) -> str:
    if match.kind is Kind.JOB:
        return link("console.job_page", guid=match.guid)
    if match.kind is Kind.MEMBER:
        return link("console.member_page", guid=match.guid)
    return link("console.jobs_page", user_guid=match.guid)
