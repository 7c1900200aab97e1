"""Blueprint for handlers: how each one delivers (paused, circuit, due runs), pause and resume.
Bearer token required."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response

from service.api.access import require_bearer_token
from service.api.documented import API_AUTH, ApiDoc, PathParam, documented
from service.api.responses import json_response
from service.context import current_state
from service.handlers.registry import handler_names
from service.outbox.handler_states import handler_statuses, set_paused
from service.outbox.schemas import HandlerListOut, HandlerOut
from service.platform.db import transaction
from service.platform.logs import log

bp = Blueprint("handlers", __name__)
logger = logging.getLogger("jobhooks.admin")
NAME_PARAM = PathParam("name", "the handler's name, as in HANDLERS (e.g. mfa_prompt)")


bp.before_request(require_bearer_token)


@bp.get("/handlers")
@documented(
    ApiDoc(
        "Every handler: paused, circuit, due runs, oldest due run, last error",
        "handler runs",
        API_AUTH,
        ok_model=HandlerListOut,
        errors=("401", "503"),
    )
)
def list_handlers() -> Response:
    with transaction(current_state().sessions) as session:
        statuses = handler_statuses(session, sorted(handler_names()), datetime.now(UTC))
    return json_response(HandlerListOut(handlers=[HandlerOut.of(status) for status in statuses]))


@bp.post("/handlers/<name>/pause")
@documented(
    ApiDoc(
        "Pause a handler: its runs stay queued, no worker delivers them until resumed",
        "handler runs",
        API_AUTH,
        ok_status="202",
        ok_description="paused, on every worker; survives restarts",
        ok_model=HandlerOut,
        path_params=(NAME_PARAM,),
        errors=("401", "404", "503"),
    )
)
def pause_handler(name: str) -> Response:
    return _set_paused(name, paused=True)


@bp.post("/handlers/<name>/resume")
@documented(
    ApiDoc(
        "Resume a paused handler: its queued runs are delivered",
        "handler runs",
        API_AUTH,
        ok_status="202",
        ok_description="resumed",
        ok_model=HandlerOut,
        path_params=(NAME_PARAM,),
        errors=("401", "404", "503"),
    )
)
def resume_handler(name: str) -> Response:
    return _set_paused(name, paused=False)


def _set_paused(name: str, *, paused: bool) -> Response:
    """An unknown name is UnknownHandler, answered 404 by the app's error handler."""
    now = datetime.now(UTC)
    with transaction(current_state().sessions) as session:
        set_paused(session, name, paused, now, handler_names())
        [status] = [s for s in handler_statuses(session, [name], now) if s.handler == name]
    log(logger, "handler paused" if paused else "handler resumed", handler=name)
    return json_response(HandlerOut.of(status), 202)
