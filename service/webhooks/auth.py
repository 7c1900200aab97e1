"""Credential checks: pure functions of headers, body and secrets, comparing in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

BASIC_CHALLENGE = 'Basic realm="jobhooks", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="jobhooks"'
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _equals_any(candidate: bytes, allowed: Iterable[bytes]) -> bool:
    """Compare against every allowed value, without stopping early, so timing reveals nothing."""
    matched = False
    for value in allowed:
        matched |= hmac.compare_digest(candidate, value)
    return matched


def _scheme_value(header: str | None, scheme: str) -> str | None:
    if not header:
        return None
    given_scheme, _, value = header.strip().partition(" ")
    if given_scheme.lower() != scheme.lower() or not value.strip():
        return None
    return value.strip()


def _basic_bytes(header: str | None) -> bytes | None:
    encoded = _scheme_value(header, "Basic")
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The (user, password) of a Basic header, or None when it is absent or malformed."""
    decoded = _basic_bytes(header)
    if decoded is None:
        return None
    try:
        user, sep, password = decoded.decode("utf-8").partition(":")
    except UnicodeDecodeError:
        return None
    return (user, password) if sep else None


def basic_auth_matches(header: str | None, pairs: Sequence[tuple[str, str]]) -> bool:
    decoded = _basic_bytes(header)
    if decoded is None or not pairs:
        return False
    return _equals_any(decoded, (f"{user}:{password}".encode() for user, password in pairs))


def bearer_token(header: str | None) -> str | None:
    return _scheme_value(header, "Bearer")


def bearer_matches(header: str | None, tokens: Sequence[str]) -> bool:
    token = bearer_token(header)
    if token is None or not tokens:
        return False
    return _equals_any(token.encode(), (allowed.encode() for allowed in tokens))


def has_signature_headers(headers: Mapping[str, str]) -> bool:
    return all(headers.get(name) for name in SIGNATURE_HEADERS)


def signature_matches(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> bool:
    """Standard Webhooks: HMAC-SHA256 over id.timestamp.body, timestamp within 5 minutes."""
    if not secrets or not has_signature_headers(headers):
        return False
    signed_headers = {name: headers[name] for name in SIGNATURE_HEADERS}
    verified = False
    for secret in secrets:
        try:
            Webhook(secret).verify(body, signed_headers, json_parse=False)
            verified = True
        except (WebhookVerificationError, ValueError):  # ValueError: undecodable body or header
            continue
    return verified
