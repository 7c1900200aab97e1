"""The documents the API serves about handler runs, and the /handler-runs query."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from service.outbox.handler_states import HandlerStatus
from service.outbox.models import CircuitState, RunState
from service.outbox.retry import MAX_LIST_LIMIT
from service.platform.types import Guid, UtcTimestamp

DEFAULT_LIST_LIMIT = 100


def _empty_is_absent(value: object) -> object:
    """state= and job_guid= with nothing after them filter nothing, as if left out."""
    return None if value == "" else value


class HandlerRunsQuery(BaseModel):
    """GET /handler-runs query string; newest runs first."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    state: Annotated[RunState | None, BeforeValidator(_empty_is_absent)] = None
    job_guid: Annotated[Guid | None, BeforeValidator(_empty_is_absent)] = None
    member_guid: Annotated[Guid | None, BeforeValidator(_empty_is_absent)] = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)] = Field(
        default=DEFAULT_LIST_LIMIT, description=f"how many runs, 1 to {MAX_LIST_LIMIT}"
    )


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
    state: RunState
    attempts: int
    due_at: UtcTimestamp
    last_error: str | None
    idempotency_key: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    finished_at: UtcTimestamp | None


class HandlerRunListOut(BaseModel):
    handler_runs: list[HandlerRunOut]


class HandlerOut(BaseModel):
    handler: str
    paused: bool
    paused_at: UtcTimestamp | None
    circuit: CircuitState = Field(
        description="closed: delivering; open: failing, waiting until open_until; half_open: "
        "one probe is out"
    )
    consecutive_failures: int
    open_until: UtcTimestamp | None
    due_runs: int = Field(description="pending runs whose time has come")
    oldest_due_at: UtcTimestamp | None
    last_error: str | None
    last_failure_at: UtcTimestamp | None

    @classmethod
    def of(cls, status: HandlerStatus) -> HandlerOut:
        return cls.model_validate(status, from_attributes=True)


class HandlerListOut(BaseModel):
    handlers: list[HandlerOut]
