"""Standard Webhooks signatures end to end: rotation, and every stale, forged or broken variant."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from conftest import SIGNING_SECRET, app_state, job_body
from db_rows import count
from flask import Flask
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook

from service.app import create_app
from service.config import Settings
from service.jobs.models import JobEvent
from service.webhooks.models import RejectedDelivery

NEW_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
OTHER_SECRET = "whsec_dGhpcyBpcyBub3Qgb3VyIHNlY3JldCBhdCBhbGw="


@pytest.fixture
def signed_only(settings: Settings) -> Iterator[Flask]:
    """Only signatures configured (as behind a signing relay), two secrets mid-rotation."""
    app = create_app(
        dataclasses.replace(settings, basic_auth=(), signing_secrets=(NEW_SECRET, SIGNING_SECRET))
    )
    yield app
    app_state(app).engine.dispose()


def post_signed(
    app: Flask,
    body: bytes,
    secret: str = SIGNING_SECRET,
    signed_at: datetime | None = None,
    message_id: str = "msg_e2e",
    signature: str | None = None,
) -> int:
    moment = signed_at or datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature or Webhook(secret).sign(message_id, moment, body.decode()),
    }
    return app.test_client().post("/webhooks/mx/jobs", data=body, headers=headers).status_code


BODY = orjson.dumps({"job": job_body()})


@pytest.mark.parametrize("secret", [SIGNING_SECRET, NEW_SECRET], ids=["old", "new"])
def test_either_secret_of_a_rotation_is_accepted(
    signed_only: Flask, engine: Engine, secret: str
) -> None:
    assert post_signed(signed_only, BODY, secret=secret) == 204
    assert count(engine, JobEvent, delivery_id="msg_e2e") == 1


@pytest.mark.parametrize(
    "variant",
    ["unknown-secret", "stale", "from-the-future", "garbled", "other-message-id"],
)
def test_refused_signature_variants_store_nothing(
    signed_only: Flask, engine: Engine, variant: str
) -> None:
    now = datetime.now(UTC)
    if variant == "unknown-secret":
        status = post_signed(signed_only, BODY, secret=OTHER_SECRET)
    elif variant == "stale":
        status = post_signed(signed_only, BODY, signed_at=now - timedelta(minutes=6))
    elif variant == "from-the-future":
        status = post_signed(signed_only, BODY, signed_at=now + timedelta(minutes=6))
    elif variant == "garbled":
        status = post_signed(signed_only, BODY, signature="v1,not-base64!!")
    else:
        forged = Webhook(SIGNING_SECRET).sign("msg_other", now, BODY.decode())
        status = post_signed(signed_only, BODY, signature=forged)

    assert status == 401
    assert count(engine, JobEvent) == 0
    assert count(engine, RejectedDelivery) == 0


def test_signed_but_invalid_body_is_quarantined(signed_only: Flask, engine: Engine) -> None:
    body = orjson.dumps({"job": {"guid": "JOB-1", "status": "two"}})

    assert post_signed(signed_only, body) == 422
    assert count(engine, RejectedDelivery, delivery_id="msg_e2e") == 1


def test_signed_redelivery_with_the_same_webhook_id_is_stored_once(
    signed_only: Flask, engine: Engine
) -> None:
    assert post_signed(signed_only, BODY) == 204
    assert post_signed(signed_only, BODY) == 204
    assert count(engine, JobEvent) == 1
