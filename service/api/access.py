"""What every query and admin blueprint shares: the bearer-token gate, autocommit reads, cursors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import request
from sqlalchemy.orm import Session

from service.api.cursors import CursorError, cursor_key, decode_cursor, encode_cursor
from service.context import current_state
from service.errors import BadRequest, FieldProblem, Unauthorized
from service.platform.pages import Position
from service.webhooks.auth import BEARER_CHALLENGE, bearer_matches


def require_bearer_token() -> None:
    """Registered as before_request on each API blueprint."""
    if not bearer_matches(
        request.headers.get("Authorization"), current_state().settings.api_tokens
    ):
        raise Unauthorized("a valid bearer token is required", BEARER_CHALLENGE)


@contextmanager
def reading() -> Iterator[Session]:
    """Read-only work in autocommit: no BEGIN and COMMIT round trips around a few SELECTs,
    which at these query times is a third of a request's latency."""
    state = current_state()
    with state.sessions(
        bind=state.engine.execution_options(isolation_level="AUTOCOMMIT")
    ) as session:
        yield session


def position_from(cursor: str | None, scope: str) -> Position | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, scope, _cursor_key())
    except CursorError as error:
        raise BadRequest("invalid cursor", [FieldProblem("cursor", str(error))]) from None


def cursor_for(position: Position | None, scope: str) -> str | None:
    return encode_cursor(position, scope, _cursor_key()) if position is not None else None


def _cursor_key() -> bytes:
    return cursor_key(current_state().settings.secret_key)
