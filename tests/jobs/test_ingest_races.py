"""MX retries overlap: copies of one delivery reaching two web workers at once are stored once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import SIGNING_SECRET, app_state, basic_header, job_body
from db_rows import count, rows
from flask import Flask
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook

from service.app import create_app
from service.config import Settings
from service.jobs.models import Job, JobEvent
from service.outbox.models import HandlerRun

JOBS_URL = "/webhooks/mx/jobs"
ROUNDS = 5
BARRIER_TIMEOUT_SECONDS = 10


@pytest.fixture
def two_workers(settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    """Two apps with their own engines and pools, as two gunicorn workers would have."""
    first, second = create_app(settings), create_app(settings)
    yield first, second
    for app in (first, second):
        app_state(app).engine.dispose()


Delivery = tuple[dict[str, Any], dict[str, str]]


def post_at_once(apps: tuple[Flask, Flask], deliveries: tuple[Delivery, Delivery]) -> list[int]:
    """Post one delivery from each app, released together by a barrier; return the statuses."""
    barrier = threading.Barrier(len(apps), timeout=BARRIER_TIMEOUT_SECONDS)

    def post(app: Flask, delivery: Delivery) -> int:
        client = app.test_client()
        document, headers = delivery
        barrier.wait()
        body = json.dumps(document)
        headers = {"Content-Type": "application/json", **headers}
        return client.post(JOBS_URL, data=body, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        futures = [
            pool.submit(post, app, delivery) for app, delivery in zip(apps, deliveries, strict=True)
        ]
        return [future.result(timeout=60) for future in futures]


def challenged(guid: str, **overrides: Any) -> dict[str, Any]:
    return {"job": job_body(guid=guid, status=2, status_name="CHALLENGED", **overrides)}


def test_identical_deliveries_racing_store_one_history_row_and_one_run(
    two_workers: tuple[Flask, Flask], engine: Engine
) -> None:
    for round_number in range(ROUNDS):
        guid = f"JOB-race-{round_number}"
        delivery = (challenged(guid), basic_header())

        statuses = post_at_once(two_workers, (delivery, delivery))

        assert statuses == [204, 204]
        assert count(engine, JobEvent, job_guid=guid) == 1
        assert count(engine, HandlerRun, job_guid=guid, handler="mfa_prompt") == 1
        assert count(engine, Job, guid=guid) == 1


def signed(document: dict[str, Any], message_id: str) -> Delivery:
    """A delivery whose Standard Webhooks signature covers its webhook-id and body."""
    now = datetime.now(UTC)
    signature = Webhook(SIGNING_SECRET).sign(message_id, now, json.dumps(document))
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return document, headers


def test_racing_retries_under_one_signed_webhook_id_store_one_history_row(
    two_workers: tuple[Flask, Flask], engine: Engine
) -> None:
    for round_number in range(ROUNDS):
        guid = f"JOB-race-id-{round_number}"
        message_id = f"msg_race_{round_number}"
        original = signed(challenged(guid, updated_at="2026-11-25T10:00:00Z"), message_id)
        altered = signed(challenged(guid, updated_at="2026-11-25T10:00:05Z"), message_id)

        statuses = post_at_once(two_workers, (original, altered))

        assert statuses == [204, 204]
        assert count(engine, JobEvent, job_guid=guid) == 1
        assert count(engine, HandlerRun, job_guid=guid) == 1


def test_racing_status_changes_leave_the_newest_as_current(
    two_workers: tuple[Flask, Flask], engine: Engine
) -> None:
    for round_number in range(ROUNDS):
        guid = f"JOB-race-order-{round_number}"
        older = (challenged(guid, updated_at="2026-11-25T10:00:00Z"), basic_header())
        newer = ({"job": job_body(guid=guid, status=6)}, basic_header())

        statuses = post_at_once(two_workers, (older, newer))

        assert statuses == [204, 204]
        [job] = rows(engine, Job, guid=guid)
        assert job.status == 6
        assert count(engine, JobEvent, job_guid=guid) == 2
        # The older event queues its run only if it landed first, while it was still current.
        assert count(engine, HandlerRun, job_guid=guid, handler="data_ready") == 1
