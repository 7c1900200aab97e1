"""MX's OAuth 2 client credentials: POST /oauth/token issues tokens the ingest endpoint accepts."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator

import pytest
from conftest import job_body
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from service.app import create_app
from service.config import Settings
from service.context import EXTENSION_KEY
from service.webhooks.oauth import TOKEN_SALT, signing_key

CLIENT_ID = "mx-client"
CLIENT_SECRET = "mx-client-secret-value"
TOKEN_URL = "/oauth/token"


@pytest.fixture
def oauth_app(settings: Settings) -> Iterator[Flask]:
    app = create_app(
        dataclasses.replace(
            settings, basic_auth=(), signing_secrets=(), oauth_clients=((CLIENT_ID, CLIENT_SECRET),)
        )
    )
    yield app
    app.extensions[EXTENSION_KEY].engine.dispose()


@pytest.fixture
def oauth_client(oauth_app: Flask) -> FlaskClient:
    return oauth_app.test_client()


def request_token(client: FlaskClient, **form: str) -> dict[str, object]:
    response = client.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **form,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    document: dict[str, object] = response.get_json()
    return document


def post_with_bearer(client: FlaskClient, token: str) -> int:
    response = client.post(
        "/webhooks/mx/jobs", json={"job": job_body()}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


def test_token_response_has_rfc6749_shape_and_is_not_cached(oauth_client: FlaskClient) -> None:
    response = oauth_client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        },
    )

    assert response.status_code == 200
    document = response.get_json()
    assert document["token_type"] == "Bearer"
    assert document["expires_in"] == 3600
    assert isinstance(document["access_token"], str) and len(document["access_token"]) > 20
    assert response.headers["Cache-Control"] == "no-store"


def test_issued_token_is_accepted_by_the_ingest_endpoint(oauth_client: FlaskClient) -> None:
    token = request_token(oauth_client)["access_token"]

    assert post_with_bearer(oauth_client, str(token)) == 204


def test_token_is_verified_by_another_process_without_shared_state(
    oauth_app: Flask, settings: Settings
) -> None:
    token = request_token(oauth_app.test_client())["access_token"]
    other = create_app(
        dataclasses.replace(settings, basic_auth=(), oauth_clients=((CLIENT_ID, CLIENT_SECRET),))
    )
    try:
        assert post_with_bearer(other.test_client(), str(token)) == 204
    finally:
        other.extensions[EXTENSION_KEY].engine.dispose()


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": ""}, 400, "invalid_request"),
    ],
)
def test_bad_token_requests_are_refused_with_rfc6749_errors(
    oauth_client: FlaskClient, form: dict[str, str], status: int, error: str
) -> None:
    data = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **form,
    }
    response = oauth_client.post(TOKEN_URL, data=data)

    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert "access_token" not in response.get_json()
    assert CLIENT_SECRET not in response.get_data(as_text=True)


def test_token_request_must_be_a_form(oauth_client: FlaskClient) -> None:
    response = oauth_client.post(
        TOKEN_URL, json={"grant_type": "client_credentials", "client_id": CLIENT_ID}
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_forged_token_is_refused(oauth_client: FlaskClient) -> None:
    forged = URLSafeTimedSerializer(b"not-the-key", salt=TOKEN_SALT).dumps({"sub": CLIENT_ID})

    assert post_with_bearer(oauth_client, str(forged)) == 401


def test_tampered_token_is_refused(oauth_client: FlaskClient) -> None:
    token = str(request_token(oauth_client)["access_token"])
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")

    assert post_with_bearer(oauth_client, tampered) == 401


class TwoHoursAgoSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 7200


def test_expired_token_is_refused(oauth_client: FlaskClient) -> None:
    key = signing_key(None, ((CLIENT_ID, CLIENT_SECRET),))
    serializer = URLSafeTimedSerializer(key, salt=TOKEN_SALT, signer=TwoHoursAgoSigner)
    expired = str(serializer.dumps({"sub": CLIENT_ID, "jti": "x"}))

    assert post_with_bearer(oauth_client, expired) == 401


def test_token_of_a_removed_client_is_refused(oauth_app: Flask, settings: Settings) -> None:
    token = str(request_token(oauth_app.test_client())["access_token"])
    rotated = create_app(
        dataclasses.replace(
            settings,
            basic_auth=(),
            secret_key_setting=None,
            oauth_clients=(("new-client", "new-client-secret"),),
        )
    )
    try:
        assert post_with_bearer(rotated.test_client(), token) == 401
    finally:
        rotated.extensions[EXTENSION_KEY].engine.dispose()


def test_changing_a_client_secret_revokes_its_tokens_even_with_a_fixed_secret_key(
    settings: Settings,
) -> None:
    def app_with(secret: str) -> Flask:
        return create_app(
            dataclasses.replace(
                settings,
                basic_auth=(),
                signing_secrets=(),
                secret_key_setting="k" * 40,
                oauth_clients=((CLIENT_ID, secret),),
            )
        )

    before, after = app_with(CLIENT_SECRET), app_with("a-new-secret-after-rotation")
    try:
        token = str(request_token(before.test_client())["access_token"])
        assert post_with_bearer(before.test_client(), token) == 204
        assert post_with_bearer(after.test_client(), token) == 401
    finally:
        for app in (before, after):
            app.extensions[EXTENSION_KEY].engine.dispose()


def test_a_credential_field_given_twice_is_refused(oauth_client: FlaskClient) -> None:
    form = (
        f"grant_type=client_credentials&client_id={CLIENT_ID}"
        f"&client_secret=a-wrong-guess&client_secret={CLIENT_SECRET}"
    )
    response = oauth_client.post(
        TOKEN_URL, data=form, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_api_token_is_not_an_ingest_credential(oauth_client: FlaskClient) -> None:
    assert post_with_bearer(oauth_client, "test-api-token") == 401
