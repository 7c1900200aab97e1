"""OAuth 2 client credentials (RFC 6749 §4.4) for MX: jobhooks issues the bearer tokens it accepts.

Tokens are signed and timestamped (itsdangerous) with a key derived from SECRET_KEY, so every web
process on every machine can verify them without shared memory or a database read. A token names its
client and carries a short MAC of the secret it was issued under: removing a client from
WEBHOOK_OAUTH_CLIENTS, or changing its secret, revokes its tokens at once.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadData, URLSafeTimedSerializer

from service.platform.keys import stretched_key
from service.webhooks.auth import basic_credentials, bearer_token

TOKEN_SALT = "jobhooks.oauth.access-token"  # noqa: S105 - a namespace, not a secret


class TokenRequestError(Exception):
    """An RFC 6749 §5.2 error: `code` is the standard error name."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int

    def as_response(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def signing_key(secret_key_setting: str | None, clients: Sequence[tuple[str, str]]) -> bytes:
    """SECRET_KEY when set; otherwise a key only the holders of the client secrets can know."""
    if secret_key_setting is not None:
        return secret_key_setting.encode()
    return _derive_from_clients(tuple(sorted(clients)))


@lru_cache(maxsize=4)
def _derive_from_clients(clients: tuple[tuple[str, str], ...]) -> bytes:
    material = "\x1e".join(f"{client_id}\x1f{secret}" for client_id, secret in clients)
    return stretched_key(material, b"jobhooks/oauth/v1")


def _serializer(secret_key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def _client_matches(client_id: str, secret: str, clients: Sequence[tuple[str, str]]) -> bool:
    given = f"{client_id}:{secret}".encode()
    matched = False
    for known_id, known_secret in clients:
        matched |= hmac.compare_digest(given, f"{known_id}:{known_secret}".encode())
    return matched


def issue_token(
    form: Mapping[str, str],
    authorization: str | None,
    clients: Sequence[tuple[str, str]],
    secret_key: bytes,
    lifetime_seconds: int,
) -> IssuedToken:
    """Check the token request and the client's credentials; sign a short-lived token."""
    if form.get("grant_type") != "client_credentials":
        if not form.get("grant_type"):
            raise TokenRequestError("invalid_request", "grant_type is required")
        raise TokenRequestError("unsupported_grant_type", "only client_credentials is supported")
    from_header = basic_credentials(authorization)
    from_form = (form.get("client_id"), form.get("client_secret"))
    if from_header is not None and any(from_form):
        raise TokenRequestError("invalid_request", "authenticate the client one way, not two")
    client_id, secret = from_header if from_header is not None else from_form
    if not client_id or not secret or not _client_matches(client_id, secret, clients):
        raise TokenRequestError("invalid_client", "client authentication failed", 401)
    # The random part makes every token unique even when two are issued in the same second.
    claims = {
        "sub": client_id,
        "sv": _secret_version(secret_key, client_id, secret),
        "jti": secrets.token_urlsafe(8),
    }
    token = _serializer(secret_key).dumps(claims)
    return IssuedToken(access_token=str(token), expires_in=lifetime_seconds)


def token_is_valid(
    authorization: str | None,
    clients: Sequence[tuple[str, str]],
    secret_key: bytes,
    lifetime_seconds: int,
) -> bool:
    token = bearer_token(authorization)
    if token is None or not clients:
        return False
    try:
        claims = _serializer(secret_key).loads(token, max_age=lifetime_seconds)
    except BadData:  # bad signature, expired, or undecodable
        return False
    if not isinstance(claims, dict):
        return False
    subject, version = str(claims.get("sub")), str(claims.get("sv"))
    matched = False
    for known_id, known_secret in clients:
        # Every client is compared, so the time taken does not tell which id matched.
        expected = _secret_version(secret_key, known_id, known_secret)
        matched |= hmac.compare_digest(subject, known_id) & hmac.compare_digest(version, expected)
    return matched


def _secret_version(secret_key: bytes, client_id: str, secret: str) -> str:
    """Names the secret a token was issued under without revealing anything about it."""
    mac = hmac.new(secret_key, f"oauth-secret\x1f{client_id}\x1f{secret}".encode(), "sha256")
    return mac.hexdigest()[:16]
