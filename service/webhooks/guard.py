"""Wires the failed-authentication limiter into requests: refuse blocked addresses, count 401s."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.context import current_state
from service.errors import ApiError
from service.platform.db import transaction
from service.platform.logs import log
from service.webhooks.ratelimit import FailedAuthLimiter

LIMITER_KEY = "jobhooks.failed_auth_limiter"
logger = logging.getLogger("jobhooks.guard")


class TooManyFailures(ApiError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            429,
            "too_many_failed_authentications",
            "too many failed authentication attempts from this address; retry later",
            headers={"Retry-After": str(retry_after_seconds)},
        )


def client_address() -> str:
    return address_of(request.remote_addr)


def address_of(remote_addr: str | None) -> str:
    # Behind a proxy, ProxyFix (TRUSTED_PROXY_COUNT) has already put the client's address here.
    return (remote_addr or "unknown")[:64]


def seconds_blocked(
    limiter: FailedAuthLimiter, sessions: sessionmaker[Session], address: str
) -> int:
    """How long `address` must wait before it may try again (0: it may), after learning, at most
    once a second per process, the blocks other processes made."""
    now = datetime.now(UTC)
    if limiter.claim_refresh():
        try:
            with transaction(sessions) as session:
                limiter.refresh(session, now)
        except SQLAlchemyError as error:
            # The blocks this process knows still hold; the next refresh tries again.
            log(
                logger,
                "could not read blocked addresses",
                logging.WARNING,
                error=type(error).__name__,
            )
    return limiter.blocked_for(address, now)


def install_failed_auth_limiter(
    app: Flask, limit: int, window_seconds: int, exempt: Collection[str] = ()
) -> None:
    limiter = FailedAuthLimiter(limit, window_seconds)
    app.extensions[LIMITER_KEY] = limiter
    exempt = frozenset(exempt)

    @app.before_request
    def refuse_blocked_address() -> None:
        wait = seconds_blocked(limiter, current_state().sessions, client_address())
        if wait:
            raise TooManyFailures(wait)

    @app.after_request
    def count_failed_authentication(response: Response) -> Response:
        address = client_address()
        if response.status_code != 401 or address in exempt:
            return response
        try:
            with transaction(current_state().sessions) as session:
                blocked = limiter.record_failure(session, address, datetime.now(UTC))
        except SQLAlchemyError as error:
            # The 401 stands either way; a database hiccup must not turn it into a 5xx.
            log(
                logger,
                "could not count failed authentication",
                logging.WARNING,
                error=type(error).__name__,
            )
            return response
        if blocked:
            log(
                logger,
                "address blocked after failed authentications",
                logging.WARNING,
                client_address=address,
            )
        return response
