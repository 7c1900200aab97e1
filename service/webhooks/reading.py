"""Authenticate a webhook request, then read its body: by header where the method allows, and
by the body's own signature otherwise; every body within its size and time limits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from flask import request

from service.config import Settings
from service.errors import PayloadTooLarge, Unauthorized, UnreadableBody
from service.webhooks.auth import (
    BASIC_CHALLENGE,
    SIGNATURE_HEADERS,
    basic_auth_matches,
    has_signature_headers,
    signature_matches,
)
from service.webhooks.oauth import signing_key, token_is_valid
from service.webhooks.payload import body_deadline, read_limited


def read_authenticated_body(settings: Settings) -> tuple[bytes, bool, datetime | None]:
    """Authenticate before parsing anything; a signature needs the body, the others do not.

    Also returns the signing time when a signature was verified (connection statuses use it).
    Every body must arrive within BODY_TIMEOUT_SECONDS, so a slow sender cannot hold a thread.
    """
    limit = settings.max_body_bytes
    signed_headers = {name: request.headers.get(name, "") for name in SIGNATURE_HEADERS}
    signed = bool(settings.signing_secrets) and has_signature_headers(signed_headers)
    if _header_credentials_pass(request.headers.get("Authorization"), settings):
        body, too_large = _read_body(settings)
        verified = (
            signed
            and not too_large
            and signature_matches(body, signed_headers, settings.signing_secrets)
        )
        return body, too_large, _signature_time(signed_headers) if verified else None
    if signed:
        if (request.content_length or 0) > limit:
            # Too big to verify: refused before a byte of it is read, and never quarantined.
            raise PayloadTooLarge(limit)
        try:
            body, too_large = _read_body(settings)
        except UnreadableBody:
            # A signature claimed and never completed is a failed authentication: it counts
            # toward the address's limit like a wrong password.
            raise Unauthorized("the signed body did not arrive in full", None) from None
        if too_large:
            raise PayloadTooLarge(limit)
        if signature_matches(body, signed_headers, settings.signing_secrets):
            return body, too_large, _signature_time(signed_headers)
    challenge = BASIC_CHALLENGE if settings.basic_auth else None
    raise Unauthorized("valid webhook credentials are required", challenge)


def _read_body(settings: Settings) -> tuple[bytes, bool]:
    with body_deadline(request.environ, settings.body_timeout_seconds) as deadline:
        return read_limited(
            request.stream, settings.max_body_bytes, request.content_length, deadline
        )


def _signature_time(signed_headers: Mapping[str, str]) -> datetime | None:
    """webhook-timestamp (Unix seconds); the verifier already checked it is recent."""
    try:
        return datetime.fromtimestamp(int(signed_headers["webhook-timestamp"]), UTC)
    except (KeyError, ValueError, OverflowError, OSError):
        return None


def _header_credentials_pass(authorization: str | None, settings: Settings) -> bool:
    """HTTP Basic, a bearer token from our OAuth token endpoint, or an explicitly open dev setup."""
    if basic_auth_matches(authorization, settings.basic_auth):
        return True
    if settings.oauth_clients and token_is_valid(
        authorization,
        settings.oauth_clients,
        signing_key(settings.secret_key_setting, settings.oauth_clients),
        settings.oauth_token_ttl_seconds,
    ):
        return True
    return settings.allow_unauthenticated and not settings.has_ingest_credentials
