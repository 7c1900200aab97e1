"""Quarantine: bodies refused at the door, with reason and field errors; one body's page; replay
it as stored, or as edited in the page's form, through the same ingest as `jobhooks quarantine
replay`. A replay that fails changes nothing: the delivery stays quarantined and the page shows
why, with the edited body still in the form."""

from __future__ import annotations

import base64

from flask import Response, request

from service.api.access import reading
from service.api.documented import documented
from service.api.jobs import rejected_deliveries_page
from service.api.query_params import parse_query
from service.console.audit import record_action
from service.console.blueprint import bp, link, page, see_other
from service.console.documentation import action_doc, id_param, page_doc
from service.console.notices import notice_url_args
from service.console.replay_target import replayed_kind, replayed_owner
from service.context import current_state
from service.errors import NotFound
from service.platform.db import transaction
from service.platform.types import PageQuery
from service.webhooks.errors import ReplayRefused
from service.webhooks.quarantine import rejected_delivery, replay
from service.webhooks.schemas import RejectedDeliveryOut

MAX_ID = 2**63 - 1
DELIVERY_PARAM = id_param("rejected_id", "the quarantined delivery's id")
EDITED_BODY_FIELD = "body"


@bp.get("/console/quarantine")
@documented(
    page_doc("Quarantined deliveries, newest first", PageQuery, errors=("400", "401", "503"))
)
def quarantine_page() -> Response:
    query = parse_query(PageQuery, request.args)
    listing = rejected_deliveries_page(query)
    next_cursor = listing.next_cursor
    return page(
        "quarantine.html",
        rows=listing.rejected_deliveries,
        next_url=link("console.quarantine_page", cursor=next_cursor) if next_cursor else None,
        first_url=link("console.quarantine_page") if query.cursor else None,
    )


@bp.get("/console/quarantine/<int:rejected_id>")
@documented(
    page_doc(
        "One quarantined delivery: reason, field errors, body, replay forms",
        path_params=(DELIVERY_PARAM,),
        errors=("401", "404", "503"),
    )
)
def rejected_page_view(rejected_id: int) -> Response:
    return page("rejected.html", row=_delivery(rejected_id), problem=None, edited=None)


@bp.post("/console/quarantine/<int:rejected_id>/replay")
@documented(
    action_doc(
        "Replay a quarantined delivery as stored, or with the edited body sent",
        (DELIVERY_PARAM,),
        fields={
            EDITED_BODY_FIELD: {
                "type": "string",
                "description": "the edited body; leave out to replay as stored",
            }
        },
        errors=("401", "403", "404", "409", "422", "503"),
    )
)
def replay_delivery(rejected_id: int) -> Response:
    row = _delivery(rejected_id)
    edited = request.form.get(EDITED_BODY_FIELD)
    fixed_body = edited.encode() if edited is not None else None
    state = current_state()
    try:
        with transaction(state.sessions) as session:
            outcome = replay(
                session, rejected_id, state.handlers_for, fixed_body, state.cross_source_rules
            )
            kind = replayed_kind(
                row.endpoint, fixed_body if fixed_body is not None else _stored_body(row)
            )
            owner = replayed_owner(session, kind, outcome.result)
    except ReplayRefused as refused:
        # Nothing was written: the transaction rolled back and the delivery is still quarantined.
        status = 409 if row.replayed_at is not None else 422
        return page("rejected.html", status, row=row, problem=str(refused), edited=edited)
    result = outcome.result
    record_action(
        "replay quarantined delivery",
        rejected_id=rejected_id,
        edited=fixed_body is not None,
        outcome=result.outcome.value,
        event_id=result.event_id,
        handler_runs_queued=len(result.handler_run_ids),
        owner=f"{owner[0]} {owner[1]}" if owner else None,
    )
    notice = notice_url_args("replayed", delivery=rejected_id, outcome=result.outcome.value)
    if owner is None:
        return see_other(link("console.rejected_page_view", rejected_id=rejected_id, **notice))
    endpoint = "console.job_page" if owner[0] == "job" else "console.member_page"
    return see_other(link(endpoint, guid=owner[1], **notice))


def _stored_body(row: RejectedDeliveryOut) -> bytes:
    return base64.b64decode(row.body_base64 or "")


def _delivery(rejected_id: int) -> RejectedDeliveryOut:
    with reading() as session:
        found = rejected_delivery(session, rejected_id) if rejected_id <= MAX_ID else None
    if found is None:
        raise NotFound(f"no quarantined delivery with id {rejected_id}")
    return found
