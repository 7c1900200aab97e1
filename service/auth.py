"""Credential checks as pure functions of headers, body and secrets; every comparison is constant time."""

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


def basic_auth_matches(header: str | None, pairs: Sequence[tuple[str, str]]) -> bool:
    encoded = _scheme_value(header, "Basic")
    if encoded is None or not pairs:
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
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
