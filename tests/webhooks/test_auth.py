"""Credential checks are pure functions of (headers, body, secrets): tested without Flask or SQL."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from service.webhooks.auth import (
    basic_auth_matches,
    basic_credentials,
    bearer_matches,
    bearer_token,
    has_signature_headers,
    signature_matches,
)

PAIRS = (("mx", "current-secret"), ("mx-old", "old:secret:with:colons"))
TOKENS = ("token-one", "token-two")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_c2VjcmV0LWZvci1hbm90aGVyLXNlbmRlcg=="
BODY = b'{"job": {"guid": "JOB-1", "status": 2}}'


def basic(user: str, password: str, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(f'{user}:{password}'.encode()).decode()}"


def signed_headers(
    body: bytes = BODY, secret: str = SECRET, at: datetime | None = None, msg_id: str = "msg_1"
) -> dict[str, str]:
    moment = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, body.decode()),
    }


@pytest.mark.parametrize(("user", "password"), PAIRS)
def test_basic_accepts_each_configured_pair(user: str, password: str) -> None:
    assert basic_auth_matches(basic(user, password), PAIRS)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        basic("mx", "wrong"),
        basic("mx", "old:secret:with:colons"),  # user of one pair, password of the other
        basic("MX", "current-secret"),  # user names are case sensitive
        basic("mx", "current-secret "),  # no trimming of secrets
        basic("mx", "current-secret", scheme="Bearer"),
        "Bearer token-one",
        basic("mx", "current-secret").removesuffix("="),
    ],
)
def test_basic_refuses_anything_but_an_exact_pair(header: str | None) -> None:
    assert not basic_auth_matches(header, PAIRS)


def test_basic_scheme_name_is_case_insensitive_and_spacing_tolerant() -> None:
    header = basic("mx", "current-secret", scheme="basic")

    assert basic_auth_matches(header, PAIRS)
    assert basic_auth_matches("  " + header.replace(" ", "   ") + " ", PAIRS)


def test_basic_with_no_configured_pairs_refuses_everyone() -> None:
    assert not basic_auth_matches(basic("mx", "current-secret"), ())


def test_basic_handles_non_ascii_credentials() -> None:
    pairs = (("mx", "pässwörd-✓"),)

    assert basic_auth_matches(basic("mx", "pässwörd-✓"), pairs)
    assert not basic_auth_matches(basic("mx", "passwort"), pairs)


def test_basic_credentials_splits_at_the_first_colon() -> None:
    assert basic_credentials(basic("mx-old", "old:secret")) == ("mx-old", "old:secret")
    assert basic_credentials("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert basic_credentials("Basic " + base64.b64encode(b"\xff:\xfe").decode()) is None
    assert basic_credentials(None) is None


def test_bearer_token_is_read_from_the_bearer_scheme_only() -> None:
    assert bearer_token("Bearer token-one") == "token-one"
    assert bearer_token("bearer   token-one ") == "token-one"
    assert bearer_token("Basic token-one") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


@pytest.mark.parametrize("token", TOKENS)
def test_bearer_accepts_each_configured_token(token: str) -> None:
    assert bearer_matches(f"Bearer {token}", TOKENS)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer token", "Bearer token-one-and-more", "token-one", "Bearer TOKEN-ONE"],
)
def test_bearer_refuses_unknown_tokens(header: str | None) -> None:
    assert not bearer_matches(header, TOKENS)


def test_bearer_with_no_configured_tokens_refuses_everyone() -> None:
    assert not bearer_matches("Bearer token-one", ())


def test_signature_headers_must_all_be_present_and_non_empty() -> None:
    headers = signed_headers()

    assert has_signature_headers(headers)
    for name in headers:
        assert not has_signature_headers({**headers, name: ""})
        assert not has_signature_headers({k: v for k, v in headers.items() if k != name})


def test_signature_by_any_configured_secret_is_accepted() -> None:
    assert signature_matches(BODY, signed_headers(), (SECRET,))
    assert signature_matches(BODY, signed_headers(secret=OTHER_SECRET), (SECRET, OTHER_SECRET))


@pytest.mark.parametrize(
    ("body", "headers", "secrets"),
    [
        (BODY + b" ", signed_headers(), (SECRET,)),
        (BODY, signed_headers(secret=OTHER_SECRET), (SECRET,)),
        (BODY, signed_headers(), ()),
        (BODY, {**signed_headers(), "webhook-id": "msg_other"}, (SECRET,)),
        (BODY, {**signed_headers(), "webhook-signature": "v1,AAAA"}, (SECRET,)),
        (BODY, {**signed_headers(), "webhook-timestamp": "not-a-number"}, (SECRET,)),
        # Built when the suite is collected, run minutes later: far enough out to stay so.
        (BODY, signed_headers(at=datetime.now(UTC) - timedelta(hours=6)), (SECRET,)),
        (BODY, signed_headers(at=datetime.now(UTC) + timedelta(hours=6)), (SECRET,)),
        (b"\xff\xfe not utf-8", signed_headers(), (SECRET,)),
    ],
    ids=[
        "body-changed",
        "unknown-secret",
        "no-secrets",
        "id-changed",
        "bad-signature",
        "bad-timestamp",
        "too-old",
        "from-the-future",
        "undecodable-body",
    ],
)
def test_signature_refuses_tampered_stale_or_unverifiable_deliveries(
    body: bytes, headers: dict[str, str], secrets: tuple[str, ...]
) -> None:
    assert not signature_matches(body, headers, secrets)


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)


@settings(max_examples=150, deadline=None)
@given(
    authorization=st.none() | header_text,
    msg_id=header_text,
    timestamp=header_text | st.integers().map(str),
    signature=header_text,
    body=st.binary(max_size=64),
)
def test_no_header_or_body_makes_a_credential_check_raise(
    authorization: str | None, msg_id: str, timestamp: str, signature: str, body: bytes
) -> None:
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}

    assert basic_auth_matches(authorization, PAIRS) in (True, False)
    assert bearer_matches(authorization, TOKENS) in (True, False)
    assert not signature_matches(body, headers, (SECRET, OTHER_SECRET))
