"""Handler runs: filter by state and handler, one run's page, retry one dead run, and re-queue
every dead run of a handler after a confirmation that says how many."""

from __future__ import annotations

from typing import Annotated

from flask import Response, g, request
from pydantic import BaseModel, ConfigDict, Field

from service.api.access import reading
from service.api.documented import documented
from service.api.query_params import parse_query
from service.console.audit import record_action
from service.console.blueprint import bp, kept_filters, link, page, present_args, see_other
from service.console.documentation import action_doc, id_param, page_doc
from service.console.notices import notice_url_args
from service.context import current_state
from service.errors import NotFound
from service.handlers.registry import handler_names
from service.outbox.models import HandlerRun, RunState
from service.outbox.queries import RunFilters, count_runs, runs_page
from service.outbox.retry import retry_dead, retry_dead_of_handler
from service.platform.db import transaction
from service.platform.types import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Guid

MAX_RUN_ID = 2**63 - 1
RUN_PARAM = id_param("run_id", "the handler run's id")
HandlerName = Annotated[str, Field(min_length=1, max_length=100)]


class RunsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    state: RunState | None = None
    handler: HandlerName | None = None
    job_guid: Guid | None = None
    member_guid: Guid | None = None
    before: Annotated[int, Field(ge=1, le=MAX_RUN_ID)] | None = Field(
        default=None, description="show runs older than this id (the next page)"
    )
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE

    def filters(self) -> RunFilters:
        return RunFilters(self.state, self.handler, self.job_guid, self.member_guid)


class DeadRunsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    handler: HandlerName | None = None


@bp.get("/console/runs")
@documented(
    page_doc(
        "Handler runs, newest first, by state and handler", RunsQuery, errors=("400", "401", "503")
    )
)
def runs_page_view() -> Response:
    args = present_args(request.args)
    query = parse_query(RunsQuery, args)
    with reading() as session:
        runs, next_before = runs_page(session, query.filters(), query.before, query.limit)
    kept = kept_filters(args, RunsQuery, "before")
    return page(
        "runs.html",
        runs=runs,
        query=query,
        states=list(RunState),
        handlers=sorted(handler_names()),
        next_url=link("console.runs_page_view", **kept, before=next_before)
        if next_before
        else None,
        first_url=link("console.runs_page_view", **kept) if query.before else None,
    )


@bp.get("/console/runs/<int:run_id>")
@documented(page_doc("One handler run", path_params=(RUN_PARAM,), errors=("401", "404", "503")))
def run_page(run_id: int) -> Response:
    with reading() as session:
        run = session.get(HandlerRun, run_id) if run_id <= MAX_RUN_ID else None
        if run is None:
            raise NotFound(f"no handler run with id {run_id}")
        session.expunge(run)
    return page("run.html", run=run)


@bp.post("/console/runs/<int:run_id>/retry")
@documented(
    action_doc("Re-queue one dead run", (RUN_PARAM,), errors=("401", "403", "404", "409", "503"))
)
def retry_run(run_id: int) -> Response:
    if run_id > MAX_RUN_ID:
        raise NotFound(f"no handler run with id {run_id}")
    with transaction(current_state().sessions) as session:
        # RetryRefused (not dead) is answered 409 by the blueprint's error page.
        run = retry_dead(session, run_id, g.console_now)
        if run is None:
            raise NotFound(f"no handler run with id {run_id}")
        handler, job_guid, member_guid = run.handler, run.job_guid, run.member_guid
    record_action(
        "retry run",
        run_id=run_id,
        handler=handler,
        job_guid=job_guid,
        member_guid=member_guid,
        state_before=RunState.DEAD.value,
        state_after=RunState.PENDING.value,
    )
    return see_other(
        link("console.run_page", run_id=run_id, **notice_url_args("requeued", run=run_id))
    )


@bp.get("/console/runs/retry-dead")
@documented(
    page_doc(
        "Confirm re-queueing every dead run of a handler (shows how many)",
        DeadRunsQuery,
        errors=("400", "401", "503"),
    )
)
def confirm_retry_dead() -> Response:
    query = parse_query(DeadRunsQuery, present_args(request.args))
    filters = RunFilters(state=RunState.DEAD, handler=query.handler)
    with reading() as session:
        count = count_runs(session, filters)
    return page("retry_dead.html", handler=query.handler, count=count)


@bp.post("/console/runs/retry-dead")
@documented(
    action_doc(
        "Re-queue every dead run of a handler (or of all handlers)",
        fields={
            "handler": {"type": "string", "description": "empty for every handler"},
            "expected": {"type": "integer", "description": "the count the operator confirmed"},
        },
        errors=("400", "401", "403", "503"),
    )
)
def retry_dead_runs() -> Response:
    query = parse_query(DeadRunsQuery, present_args(request.form))
    expected = request.form.get("expected", "?")[:20]
    with transaction(current_state().sessions) as session:
        count = retry_dead_of_handler(session, g.console_now, query.handler)
    record_action(
        "bulk retry dead runs",
        handler=query.handler,
        confirmed_count=expected,
        requeued=count,
        state_before=RunState.DEAD.value,
        state_after=RunState.PENDING.value,
    )
    target = {"handler": query.handler} if query.handler else {}
    notice = notice_url_args(
        "bulk-requeued", count=count, expected=expected, scope=query.handler or "every handler"
    )
    return see_other(
        link("console.runs_page_view", state=RunState.PENDING.value, **target, **notice)
    )
