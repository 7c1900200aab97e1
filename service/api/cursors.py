"""Keyset page cursors: opaque to clients, signed so a client can hand one back but not forge one.

A cursor is `<payload>.<mac>`, both base64url without padding. The payload is JSON
`["1", [at, key]]`: a format version and the keyset position of the last row served (`at` an
ISO 8601 instant or null, `key` the tie-breaking guid or id). The MAC is HMAC-SHA256, truncated
to 128 bits, over the payload and a *scope* naming the list and its filters, so a cursor taken
from one query cannot be replayed against another with different filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from service.platform.pages import Position

CURSOR_VERSION = "1"
MAC_BYTES = 16
# A separate key per purpose: other features sign with the same secret_key.
CURSOR_KEY_LABEL = b"jobhooks/cursor/v1"


class CursorError(ValueError):
    """The cursor was altered, truncated, or belongs to a different query."""


def cursor_key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, CURSOR_KEY_LABEL, hashlib.sha256).digest()


def cursor_scope(listing: str, filters: Mapping[str, Any]) -> str:
    """Name a list and its filters; a cursor is only valid for the scope it was issued in."""
    canonical = orjson.dumps(dict(filters), option=orjson.OPT_SORT_KEYS)
    return f"{listing}:{hashlib.sha256(canonical).hexdigest()}"


def encode_cursor(position: Position, scope: str, key: bytes) -> str:
    at = position.at.isoformat() if position.at is not None else None
    payload = orjson.dumps([CURSOR_VERSION, [at, position.key]])
    return f"{_b64encode(payload)}.{_b64encode(_mac(key, scope, payload))}"


def decode_cursor(cursor: str, scope: str, key: bytes) -> Position:
    encoded_payload, dot, encoded_mac = cursor.partition(".")
    if not dot:
        raise CursorError("not a cursor this service issued")
    payload, mac = _b64decode(encoded_payload), _b64decode(encoded_mac)
    if not hmac.compare_digest(mac, _mac(key, scope, payload)):
        raise CursorError("the cursor was altered or belongs to a different query")
    return _position(payload)


def _mac(key: bytes, scope: str, payload: bytes) -> bytes:
    message = scope.encode() + b"\x00" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def _position(payload: bytes) -> Position:
    """Only reached with a valid MAC, so a failure here means a format change, not a client."""
    try:
        version, (at, key) = orjson.loads(payload)
        when = datetime.fromisoformat(at) if at is not None else None
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise CursorError("the cursor's contents are malformed") from None
    if version != CURSOR_VERSION or isinstance(key, bool) or not isinstance(key, str | int):
        raise CursorError("unsupported cursor version")
    return Position(when, key)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CursorError("not a cursor this service issued") from None
