"""Handlers: how each one delivers (paused, circuit, due runs, last error), pause and resume."""

from __future__ import annotations

from flask import Response, g

from service.api.access import reading
from service.api.documented import PathParam, documented
from service.console.audit import record_action
from service.console.blueprint import bp, link, page, see_other
from service.console.documentation import action_doc, page_doc
from service.console.notices import notice_url_args
from service.context import current_state
from service.handlers.registry import handler_names
from service.outbox.handler_states import handler_statuses, set_paused
from service.outbox.queries import dead_run_counts
from service.platform.db import transaction

NAME_PARAM = PathParam("name", "the handler's name, as in HANDLERS (e.g. mfa_prompt)")


@bp.get("/console/handlers")
@documented(page_doc("Every handler: paused, circuit, due and dead runs, last error"))
def handlers_page() -> Response:
    with reading() as session:
        statuses = handler_statuses(session, sorted(handler_names()), g.console_now)
        dead = dead_run_counts(session)
    return page("handlers.html", statuses=statuses, dead=dead)


@bp.post("/console/handlers/<name>/pause")
@documented(action_doc("Pause a handler", (NAME_PARAM,), errors=("401", "403", "404", "503")))
def pause_handler(name: str) -> Response:
    return _set_paused(name, paused=True)


@bp.post("/console/handlers/<name>/resume")
@documented(
    action_doc("Resume a paused handler", (NAME_PARAM,), errors=("401", "403", "404", "503"))
)
def resume_handler(name: str) -> Response:
    return _set_paused(name, paused=False)


def _set_paused(name: str, *, paused: bool) -> Response:
    """An unknown name is UnknownHandler, answered 404 by the blueprint's error page."""
    with transaction(current_state().sessions) as session:
        set_paused(session, name, paused, g.console_now, handler_names())
    record_action("pause handler" if paused else "resume handler", handler=name, paused=paused)
    notice = notice_url_args("paused" if paused else "resumed", handler=name)
    return see_other(link("console.handlers_page", **notice))
