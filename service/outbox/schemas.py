"""The documents the API serves about handler runs, and the /handler-runs query."""

from __future__ import annotations

from pydantic import BaseModel

from service.platform.types import UtcTimestamp


class HandlerRunOut(BaseModel):
    id: int
    # A run is owed to a job event (event_id, job_guid), a member event (member_event_id) or a
    # data update (data_update_id).
    event_id: int | None
    job_guid: str | None
    member_event_id: int | None = None
    data_update_id: int | None = None
    member_guid: str | None = None
    handler: str
    state: str
    attempts: int
    due_at: UtcTimestamp
    last_error: str | None
    idempotency_key: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    finished_at: UtcTimestamp | None


class HandlerRunListOut(BaseModel):
    handler_runs: list[HandlerRunOut]
