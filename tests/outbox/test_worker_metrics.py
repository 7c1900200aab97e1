"""The worker's own metrics: lag from due to start, and finished attempts by result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import FakeClock
from prometheus_client import REGISTRY

from service.outbox.worker import Worker


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_worker_observes_lag_and_counts_attempts(
    post_job: Callable[..., Any], make_worker: Callable[..., Worker], clock: FakeClock
) -> None:
    lag_count = sample("jobhooks_handler_lag_seconds_count", handler="mfa_prompt")
    lag_sum = sample("jobhooks_handler_lag_seconds_sum", handler="mfa_prompt")
    succeeded = sample("jobhooks_handler_attempts_total", handler="mfa_prompt", result="succeeded")
    assert post_job(guid="JOB-lag", status=2).status_code == 204
    clock.advance(3)

    assert make_worker().run_once()

    assert sample("jobhooks_handler_lag_seconds_count", handler="mfa_prompt") == lag_count + 1
    assert sample("jobhooks_handler_lag_seconds_sum", handler="mfa_prompt") >= lag_sum + 3
    assert (
        sample("jobhooks_handler_attempts_total", handler="mfa_prompt", result="succeeded")
        == succeeded + 1
    )
