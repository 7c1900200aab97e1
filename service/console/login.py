"""Who is at the console: any user name with an API token as the Basic password (what a browser
can send), or the token as a bearer. The token itself never leaves this module; what the rest of
the console knows is its fingerprint."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from service.webhooks.auth import basic_credentials, bearer_token

LOGIN_CHALLENGE = 'Basic realm="jobhooks console", charset="UTF-8"'
# Long enough to tell a handful of tokens apart in logs, too short to help guess one.
FINGERPRINT_HEX = 8
MAX_NAME_LENGTH = 64


@dataclass(frozen=True)
class Operator:
    # The Basic user name as typed: unchecked, so a label in logs, never an identity.
    name: str | None
    token_fingerprint: str


def token_fingerprint(token: str) -> str:
    """`printf %s "$TOKEN" | sha256sum | cut -c1-8` gives the same, to tell whose it was."""
    return hashlib.sha256(token.encode()).hexdigest()[:FINGERPRINT_HEX]


def operator_from(authorization: str | None, tokens: Sequence[str]) -> Operator | None:
    name: str | None = None
    token = bearer_token(authorization)
    if token is None:
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        name, token = credentials
    matched = _matching_token(token, tokens)
    if matched is None:
        return None
    return Operator(name[:MAX_NAME_LENGTH] if name else None, token_fingerprint(matched))


def _matching_token(candidate: str, tokens: Sequence[str]) -> str | None:
    """Compared with every token, without stopping at a match, so timing tells nothing."""
    matched = None
    for token in tokens:
        if hmac.compare_digest(candidate.encode(), token.encode()):
            matched = token
    return matched
