"""GET /rejected-deliveries: quarantined bodies, newest first, readable and byte-exact."""

from __future__ import annotations

import base64
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, event


def reject(client: FlaskClient, headers: dict[str, str], body: bytes) -> None:
    response = client.post(
        "/webhooks/mx/jobs",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422)


def test_rejected_deliveries_are_listed_newest_first_with_text_and_bytes(
    client: FlaskClient, api_headers: dict[str, str], ingest_headers: dict[str, str]
) -> None:
    invalid_utf8 = b'{"guid": "JOB-1", "status": "\xff"}'
    reject(client, ingest_headers, b'{"status": 2}')
    reject(client, ingest_headers, invalid_utf8)
    response = client.get("/rejected-deliveries", headers=api_headers)
    assert response.status_code == 200
    body = response.get_json()
    newest, oldest = body["rejected_deliveries"]
    assert body["next_cursor"] is None
    assert newest["id"] > oldest["id"]
    assert newest["status_code"] == 400
    assert newest["body_text"] == '{"guid": "JOB-1", "status": "\ufffd"}'
    assert base64.b64decode(newest["body_base64"]) == invalid_utf8
    assert oldest["status_code"] == 422
    assert oldest["reason"] == "validation_failed"
    assert oldest["details"][0]["field"] == "guid"
    assert oldest["endpoint"] == "jobs"
    assert oldest["received_at"].endswith("Z")
    assert oldest["body_truncated"] is False


def test_rejected_deliveries_page_without_duplicates_or_gaps(
    client: FlaskClient, api_headers: dict[str, str], ingest_headers: dict[str, str]
) -> None:
    for index in range(7):
        reject(client, ingest_headers, b'{"status": %d}' % index)
    seen: list[int] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get(
            "/rejected-deliveries", query_string=query, headers=api_headers
        ).get_json()
        seen += [row["id"] for row in body["rejected_deliveries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        reject(client, ingest_headers, b"{}")  # arrives mid-walk, lands ahead of the cursor
    original = seen[:7]
    assert len(seen) == len(set(seen)) == 7
    assert original == sorted(original, reverse=True)


def test_a_page_reads_the_same_few_statements_however_many_rows_it_lists(
    client: FlaskClient,
    api_headers: dict[str, str],
    ingest_headers: dict[str, str],
    engine: Engine,
) -> None:
    """Rows, body sizes and the bodies within the page's budget: three reads, not one per row."""
    for index in range(12):
        reject(client, ingest_headers, b'{"status": %d}' % index)
    statements: list[str] = []

    def record(*arguments: Any) -> None:
        statements.append(arguments[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        small = client.get("/rejected-deliveries?limit=2", headers=api_headers)
        small_count = len(statements)
        statements.clear()
        large = client.get("/rejected-deliveries?limit=12", headers=api_headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert len(small.get_json()["rejected_deliveries"]) == 2
    assert len(large.get_json()["rejected_deliveries"]) == 12
    assert len(statements) == small_count
    assert sum("rejected_deliveries" in statement for statement in statements) == 3
