"""Every operation in /openapi.json, fuzzed by schemathesis with valid credentials: no 5xx, ever,
and every 4xx in the JSON error shape. FUZZ_SCALE multiplies the size (`make fuzz` sets 20)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import API_TOKEN, app_state, basic_header, bearer_header, documented_app
from flask import Flask
from hypothesis import HealthCheck, given, settings

from service.api.openapi import openapi_document
from service.app import create_app
from service.config import Settings

FUZZ_EXAMPLES = 15 * int(os.environ.get("FUZZ_SCALE", "1"))
OPERATIONS = [
    (method.upper(), path)
    for path, operations in openapi_document(documented_app())["paths"].items()
    for method in operations
]
# These answer Prometheus text or HTML even when refusing; every other 4xx is the JSON shape.
NOT_JSON_ERRORS = {"/docs", "/metrics"}


@pytest.fixture
def fuzzed_app(settings: Settings) -> Iterator[Flask]:
    # Fuzzing sends thousands of requests from one address; keep the failed-auth limiter out of it.
    app = create_app(dataclasses.replace(settings, auth_failure_limit=10**9))
    yield app
    app_state(app).engine.dispose()


def credentials_for(path: str) -> dict[str, str]:
    if path.startswith("/webhooks/"):
        return basic_header()
    if path == "/":
        return basic_header("operator", API_TOKEN)
    return bearer_header()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_never_answers_5xx_and_errors_are_json(
    fuzzed_app: Flask, method: str, path: str
) -> None:
    operation = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)[path][method]
    calls = 0

    @given(case=operation.as_strategy())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call(headers=credentials_for(path))
        assert response.status_code < 500, (method, path, response.text[:500])
        if 400 <= response.status_code < 500 and path not in NOT_JSON_ERRORS:
            document = response.json()
            assert isinstance(document.get("error"), str), response.text[:500]
            assert isinstance(document.get("message"), str)
            assert isinstance(document.get("details"), list)

    call()
    assert calls > 0
    print(f"schemathesis: {method} {path}: {calls} cases")
