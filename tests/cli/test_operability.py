"""What on-call engineers rely on, against the real Procfile web process: metrics, logs, CLI."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import API_TOKEN, BASIC_PASSWORD, BASIC_USER, SIGNING_SECRET, job_body
from db_rows import count, rows
from procfile import HTTP_TIMEOUT_SECONDS, Served, run_jobhooks, serve_web
from prometheus_client.parser import text_string_to_metric_families

from service.jobs.models import Job
from service.members.models import MemberDataUpdate, MemberEvent
from service.webhooks.models import RejectedDelivery

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def served(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One web process per database for the module: tests use their own job guids."""
    log_path = tmp_path_factory.mktemp("web") / "web.log"
    with serve_web(module_database_url, log_path, WEBHOOK_SIGNING_SECRETS=SIGNING_SECRET) as served:
        yield served


def post(served: Served, document: object, auth: tuple[str, str]) -> int:
    # A new connection each time, so gunicorn spreads the requests over its workers.
    response = requests.post(
        f"{served.base_url}/webhooks/mx/jobs",
        json=document,
        auth=auth,
        timeout=HTTP_TIMEOUT_SECONDS,
        headers={"Connection": "close"},
    )
    return response.status_code


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{served.base_url}/metrics", timeout=HTTP_TIMEOUT_SECONDS).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def webhooks(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "jobhooks_webhooks_received_total" and ("outcome", outcome) in labels
    )


def sent_guid(output: str) -> str:
    return output.split("sent job ", 1)[1].split(" ", 1)[0]


def log_lines(served: Served) -> list[dict[str, object]]:
    return [json.loads(line) for line in served.log_path.read_text().splitlines() if line.strip()]


def wait_for_log(
    served: Served, wanted: Callable[[dict[str, object]], bool], seconds: float = 5.0
) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    while True:
        lines = log_lines(served)
        if any(wanted(line) for line in lines):
            return lines
        assert time.monotonic() < deadline, "expected log line never appeared"
        time.sleep(0.05)


def access_pids(served: Served, after_line: int = 0) -> set[object]:
    lines = log_lines(served)[after_line:]
    return {line.get("pid") for line in lines if line.get("logger") == "jobhooks.access"}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def ingest_latency_count(samples: Samples) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "jobhooks_http_request_duration_seconds_count"
        and ("route", "/webhooks/mx/jobs") in labels
    )


def test_metrics_count_traffic_from_every_gunicorn_worker(served: Served) -> None:
    right = (BASIC_USER, BASIC_PASSWORD)
    before, first_line, sent = scrape(served), len(log_lines(served)), 0
    # Concurrent batches until both workers have answered some (bounded), so both must be merged.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(20):
            batch = [{"job": job_body(guid=f"JOB-m-{sent + i}", status=2)} for i in range(10)]
            assert (
                list(pool.map(lambda document: post(served, document, right), batch)) == [204] * 10
            )
            sent += 10
            if len(access_pids(served, first_line)) == 2:
                break
    for index in range(3):
        assert post(served, {"job": job_body(guid=f"JOB-m-{index}", status=2)}, right) == 204
    assert post(served, {"job": {"guid": "JOB-bad", "status": "two"}}, right) == 422
    assert post(served, {"job": job_body()}, (BASIC_USER, "wrong")) == 401

    after = scrape(served)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert len(access_pids(served, first_line)) == 2, "both workers should have served requests"
    for outcome, expected in (("accepted", sent), ("duplicate", 3), ("rejected", 1)):
        assert webhooks(after, outcome) - webhooks(before, outcome) == expected, outcome
    assert webhooks(after, "unauthorized") - webhooks(before, "unauthorized") == 1
    assert grew("jobhooks_handler_queue_depth") == sent
    assert grew("jobhooks_jobs_by_status", status="2", status_name="CHALLENGED") == sent
    assert grew("jobhooks_handler_runs", handler="mfa_prompt", state="pending") == sent
    assert ingest_latency_count(after) - ingest_latency_count(before) == sent + 5


def test_logs_are_json_lines_without_secrets(served: Served) -> None:
    assert post(served, {"job": job_body(guid="JOB-logs")}, (BASIC_USER, BASIC_PASSWORD)) == 204
    assert post(served, {"job": job_body()}, (BASIC_USER, "a-wrong-guess")) == 401
    requests.get(
        f"{served.base_url}/jobs/JOB-logs",
        headers={"Authorization": f"Bearer {API_TOKEN}", "X-Request-ID": "trace-42"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    # Gunicorn writes the access line just after the response is sent.
    lines = wait_for_log(served, lambda line: line.get("request_id") == "trace-42")
    text = served.log_path.read_text()

    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    accepted = [line for line in lines if line.get("job_guid") == "JOB-logs"]
    assert accepted[0]["outcome"] == "accepted" and accepted[0]["request_id"]
    encoded = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    for secret in (BASIC_PASSWORD, "a-wrong-guess", API_TOKEN, encoded, "Authorization"):
        assert secret not in text


def test_send_test_delivers_a_callback_with_basic_auth(served: Served) -> None:
    result = run_jobhooks(
        served.environment,
        "send-test",
        f"{served.base_url}/webhooks/mx/jobs",
        "--status",
        "HALTED",
        "--basic",
        f"{BASIC_USER}:{BASIC_PASSWORD}",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP 204" in result.stdout
    assert [job.status for job in rows(served.engine, Job, guid=sent_guid(result.stdout))] == [9]


def test_send_test_delivers_a_signed_callback(served: Served) -> None:
    result = run_jobhooks(
        served.environment,
        "send-test",
        f"{served.base_url}/webhooks/mx/jobs",
        "--status",
        "2",
        "--sign",
        SIGNING_SECRET,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert count(served.engine, Job, guid=sent_guid(result.stdout), status=2) == 1


@pytest.mark.parametrize(
    ("kind", "status", "table"),
    [
        ("connection-status", "DENIED", MemberEvent),
        ("members", "9", MemberEvent),
        ("data-updates", "BALANCE", MemberDataUpdate),
    ],
)
def test_send_test_sends_each_member_webhook_kind_to_its_endpoint(
    served: Served, kind: str, status: str, table: type[Any]
) -> None:
    result = run_jobhooks(
        served.environment,
        "send-test",
        f"{served.base_url}/webhooks/mx/{kind}",
        "--kind",
        kind,
        "--status",
        status,
        "--basic",
        f"{BASIC_USER}:{BASIC_PASSWORD}",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP 204" in result.stdout
    member = result.stdout.split("for member ", 1)[1].split(" ", 1)[0]
    assert count(served.engine, table, member_guid=member) == 1


def test_send_test_reports_a_refusal(served: Served) -> None:
    result = run_jobhooks(
        served.environment, "send-test", f"{served.base_url}/webhooks/mx/jobs", "--status", "6"
    )

    assert result.returncode == 1
    assert "HTTP 401" in result.stdout


def test_quarantine_list_and_replay_of_a_fixed_body(served: Served, tmp_path: Path) -> None:
    broken = {"job": job_body(guid="JOB-fixme", updated_at="yesterday")}
    assert post(served, broken, (BASIC_USER, BASIC_PASSWORD)) == 422
    rejected_id = rows(served.engine, RejectedDelivery)[-1].id

    listed = run_jobhooks(served.environment, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{rejected_id}\t" in listed.stdout and "job.updated_at" in listed.stdout

    as_stored = run_jobhooks(served.environment, "quarantine", "replay", str(rejected_id))
    assert as_stored.returncode == 1 and "still invalid" in as_stored.stderr

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"job": job_body(guid="JOB-fixme", status=2)}))
    replayed = run_jobhooks(
        served.environment, "quarantine", "replay", str(rejected_id), "--body-file", str(fixed)
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "accepted" in replayed.stdout and "1 handler run" in replayed.stdout
    assert count(served.engine, Job, guid="JOB-fixme") == 1
    assert rows(served.engine, RejectedDelivery, id=rejected_id)[0].replayed_at is not None

    again = run_jobhooks(served.environment, "quarantine", "replay", str(rejected_id))
    assert again.returncode == 1 and "already replayed" in again.stderr


def test_check_passes_on_a_migrated_database(served: Served) -> None:
    result = run_jobhooks(served.environment, "check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   migrations" in result.stdout


def test_check_fails_when_the_database_is_unreachable(served: Served) -> None:
    environment = dict(served.environment)
    environment["DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"

    result = run_jobhooks(environment, "check")

    assert result.returncode == 1
    assert "FAIL database" in result.stdout
