"""Property: no body sent with valid credentials makes the webhook answer 5xx."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from conftest import basic_header
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JOBS_URL = "/webhooks/mx/jobs"
# FUZZ_SCALE=20 multiplies the example counts for a deeper search than CI can afford.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))


def fuzz_settings(max_examples: int) -> settings:
    """Modest counts keep the suite quick on two cores; no deadline: commit times vary.

    Examples share the function-scoped client and database; rows piling up is harmless here.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)

offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
aware_datetimes = st.builds(
    lambda moment, offset: moment.replace(tzinfo=timezone(offset)),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offsets,
)
timestamps = (
    aware_datetimes.map(datetime.isoformat) | st.datetimes().map(datetime.isoformat) | json_values
)
guids = (
    st.sampled_from(["JOB-1", "JOB-2", "", "J" * 255, "J" * 256])
    | st.text(max_size=300)
    | json_values
)
statuses = st.integers(min_value=-5, max_value=2**63) | st.sampled_from(range(10)) | json_values
# What an HTTP header can carry once decoded as latin-1 (control characters never reach us).
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF), min_size=1, max_size=300
)
job_objects = st.fixed_dictionaries(
    {},
    optional={
        "guid": guids,
        "status": statuses,
        "status_name": st.text(max_size=300) | json_values,
        "member_guid": guids,
        "user_guid": guids,
        "institution_guid": guids,
        "is_authenticated": st.booleans() | json_values,
        "error_message": st.text() | json_values,
        "created_at": timestamps,
        "started_at": timestamps,
        "updated_at": timestamps,
        "finished_at": timestamps,
        "unexpected": json_values,
    },
)


unix_times = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | timestamps
)
connection_fields = {
    "connection_status_id": statuses,
    "connection_status": st.sampled_from(["CHALLENGED", "DEGRADED", "locked", ""]) | json_values,
    "connection_status_message": st.text() | json_values,
    "user_guid": guids,
}
member_objects = st.fixed_dictionaries(
    {},
    optional={
        "guid": guids,
        "institution_guid": guids,
        "institution_code": st.text(max_size=300) | json_values,
        "aggregated_at": unix_times,
        "successfully_aggregated_at": unix_times,
        "updated_at": unix_times,
        "is_being_aggregated": st.booleans() | json_values,
        "action": st.sampled_from(["created", "updated", "deleted"]) | json_values,
        **connection_fields,
    },
)
data_update_objects = st.fixed_dictionaries(
    {"action": st.just("member_data_updated")},
    optional={
        "type": st.sampled_from(["AGGREGATION", "BALANCE", "VERIFICATION", ""]) | json_values,
        "member_guid": guids,
        "user_guid": guids,
        "completed_at": unix_times,
        "completed_on": st.sampled_from(["2026-11-30", "30/11/2026"]) | json_values,
        "transactions_created_count": statuses,
        "accounts": st.lists(guids, max_size=3) | json_values,
    },
)


def post_body(
    client: FlaskClient, data: bytes, delivery_id: str | None = None, url: str = JOBS_URL
) -> int:
    headers = {**basic_header(), "Content-Type": "application/json"}
    if delivery_id is not None:
        headers["webhook-id"] = delivery_id
    response = client.post(url, data=data, headers=headers)
    assert "Traceback" not in response.get_data(as_text=True)
    return response.status_code


def encode(document: Any, ascii_only: bool) -> bytes:
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@fuzz_settings(50 * SCALE)
@given(document=json_values, ascii_only=st.booleans())
def test_any_json_value_as_the_body_is_never_a_server_error(
    client: FlaskClient, document: Any, ascii_only: bool
) -> None:
    assert post_body(client, encode(document, ascii_only)) < 500


@fuzz_settings(80 * SCALE)
@given(
    job=job_objects,
    wrap=st.booleans(),
    ascii_only=st.booleans(),
    delivery_id=st.none() | header_values,
)
def test_any_job_shaped_body_is_never_a_server_error(
    client: FlaskClient, job: dict[str, Any], wrap: bool, ascii_only: bool, delivery_id: str | None
) -> None:
    document = {"job": job} if wrap else job
    assert post_body(client, encode(document, ascii_only), delivery_id) in (204, 400, 422)


@fuzz_settings(20 * SCALE)
@given(data=st.binary(max_size=200))
def test_any_bytes_as_the_body_are_never_a_server_error(client: FlaskClient, data: bytes) -> None:
    assert post_body(client, data) < 500


@fuzz_settings(60 * SCALE)
@given(member=member_objects, wrap=st.booleans(), to_any_kind=st.booleans())
def test_any_member_shaped_body_is_never_a_server_error(
    client: FlaskClient, member: dict[str, Any], wrap: bool, to_any_kind: bool
) -> None:
    document = {"action": member.get("action"), "member": member} if wrap else member
    url = "/webhooks/mx" if to_any_kind else "/webhooks/mx/members"
    assert post_body(client, encode(document, True), url=url) in (204, 400, 422)


@fuzz_settings(60 * SCALE)
@given(update=data_update_objects, to_any_kind=st.booleans())
def test_any_data_update_shaped_body_is_never_a_server_error(
    client: FlaskClient, update: dict[str, Any], to_any_kind: bool
) -> None:
    url = "/webhooks/mx" if to_any_kind else "/webhooks/mx/data-updates"
    assert post_body(client, encode(update, True), url=url) in (204, 400, 422)


@fuzz_settings(40 * SCALE)
@given(document=json_values)
def test_any_json_value_sent_to_the_any_kind_endpoint_is_never_a_server_error(
    client: FlaskClient, document: Any
) -> None:
    assert post_body(client, encode(document, True), url="/webhooks/mx") in (204, 400, 422)
