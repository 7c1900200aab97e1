"""Reading, parsing and validating a webhook body: plain functions over bytes and parsed JSON."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import job_body

from service.errors import MalformedJson, UnreadableBody, ValidationFailed
from service.jobs.deliveries import dedup_key
from service.jobs.schemas import validate_job
from service.platform.types import format_utc, parse_iso8601
from service.webhooks.payload import MAX_NESTING, is_json_content_type, parse_json, read_limited


@pytest.mark.parametrize(
    ("size", "limit", "too_large"),
    [(0, 10, False), (10, 10, False), (11, 10, True), (100_000, 64 * 1024, True)],
)
def test_read_limited_stops_one_byte_past_the_limit(size: int, limit: int, too_large: bool) -> None:
    stream = io.BytesIO(b"x" * size)

    body, over = read_limited(stream, limit)

    assert over is too_large
    assert body == b"x" * min(size, limit)
    assert stream.tell() <= limit + 1  # never reads the rest of an oversized body


@pytest.mark.parametrize(
    ("size", "declared", "limit"), [(10, 10, 100), (200, 1000, 100), (0, 0, 100), (5, None, 100)]
)
def test_body_as_long_as_declared_or_past_the_limit_is_complete(
    size: int, declared: int | None, limit: int
) -> None:
    body, _ = read_limited(io.BytesIO(b"x" * size), limit, declared)

    assert len(body) == min(size, limit)


@pytest.mark.parametrize(("size", "declared", "limit"), [(10, 20, 100), (50, 1000, 100)])
def test_body_shorter_than_its_content_length_is_unreadable(
    size: int, declared: int, limit: int
) -> None:
    with pytest.raises(UnreadableBody):
        read_limited(io.BytesIO(b"x" * size), limit, declared)


class BrokenOffStream(io.BytesIO):
    """A request body whose connection fails part way, as a WSGI server reports it."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() > 0:
            raise OSError("connection reset")
        return super().read(size)


def test_body_that_breaks_off_in_transit_is_unreadable_not_a_crash() -> None:
    with pytest.raises(UnreadableBody) as raised:
        read_limited(BrokenOffStream(b"x" * 40_000), 64 * 1024)

    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        (" application/json ;charset=UTF-8", True),
        ("application/problem+json", True),
        ("text/json", False),
        ("text/plain", False),
        ("application/jsonp", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
        (None, False),
    ],
)
def test_json_content_types_are_recognised(content_type: str | None, is_json: bool) -> None:
    assert is_json_content_type(content_type) is is_json


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \n",
        b"{",
        b"{'guid': 'JOB-1'}",
        b'{"a": NaN}',
        b"[Infinity]",
        b"1e400",
        b'"\\ud800"',
        b"\xef\xbb\xbf{}",
        b"\xc3\x28",
        b'{"a": 1} trailing',
    ],
)
def test_malformed_json_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        parse_json(body)


def test_nesting_is_bounded_without_recursion() -> None:
    at_limit = b"[" * MAX_NESTING + b"]" * MAX_NESTING
    too_deep = b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1)

    assert parse_json(at_limit) is not None
    with pytest.raises(MalformedJson):
        parse_json(too_deep)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"guid": "JOB\\u0000"}', "guid"),
        (b'{"job": {"extra": ["ok", "n\\u0000ul"]}}', "job.extra.1"),
        (b'{"k\\u0000": 1}', "k\\u0000"),
    ],
)
def test_nul_characters_are_refused_naming_where_they_are(body: bytes, field: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_json(body)

    assert [problem.field for problem in raised.value.details] == [field]


def test_large_numbers_and_unicode_parse() -> None:
    document = parse_json('{"n": 18446744073709551615, "f": 1e308, "s": "✓ 𝄞"}'.encode())

    assert document == {"n": 18446744073709551615, "f": 1e308, "s": "✓ 𝄞"}


def test_validate_job_accepts_bare_and_wrapped_and_returns_the_raw_object() -> None:
    raw = job_body(surprise={"kept": True})

    for body in (raw, {"job": raw}):
        job, stored = validate_job(body)
        assert job.guid == raw["guid"] and job.status == 6
        assert stored == raw


def test_object_with_both_job_and_guid_is_read_as_a_bare_job() -> None:
    job, stored = validate_job({"guid": "JOB-outer", "status": 1, "job": {"guid": "JOB-inner"}})

    assert job.guid == "JOB-outer"
    assert stored["job"] == {"guid": "JOB-inner"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["guid", "status"]),
        ({"job": {}}, ["job.guid", "job.status"]),
        ({"job": "x"}, ["job"]),
        ([], [""]),
        ({"guid": 1, "status": "1", "user_guid": [], "started_at": "soon"}, None),
    ],
)
def test_validation_names_each_bad_field_once(body: Any, fields: list[str] | None) -> None:
    with pytest.raises(ValidationFailed) as raised:
        validate_job(body)

    named = [problem.field for problem in raised.value.details]
    assert len(named) == len(set(named))
    if fields is not None:
        assert sorted(named) == sorted(fields)
    else:
        assert sorted(named) == ["guid", "started_at", "status", "user_guid"]


def test_validation_messages_never_echo_the_rejected_value() -> None:
    with pytest.raises(ValidationFailed) as raised:
        validate_job({"guid": "JOB-1", "status": "secret-looking-value"})

    assert all("secret-looking-value" not in p.message for p in raised.value.details)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00:30Z", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25T10:00:30+00:00", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25T04:00:30-06:00", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25T10:00:30", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25 10:00:30.5+01:00", datetime(2026, 11, 25, 9, 0, 30, 500000, tzinfo=UTC)),
        (None, None),
    ],
)
def test_iso8601_timestamps_are_normalised_to_utc(text: str | None, expected: datetime) -> None:
    parsed = parse_iso8601(text)

    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2026-02-30T00:00:00Z", 1764064830, 1.5, True, [], {}]
)
def test_anything_but_iso8601_text_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_iso8601(value)


def test_utc_is_rendered_with_z() -> None:
    moment = datetime(2026, 11, 25, 11, 0, 30, tzinfo=timezone(timedelta(hours=1)))

    assert format_utc(moment) == "2026-11-25T10:00:30Z"


def test_dedup_key_names_the_status_change_not_the_offset_it_was_written_in() -> None:
    utc, _ = validate_job(job_body(updated_at="2026-11-25T10:00:30Z"))
    shifted, _ = validate_job(job_body(updated_at="2026-11-25T12:00:30+02:00", extra=1))
    other_status, _ = validate_job(job_body(status=5, updated_at="2026-11-25T10:00:30Z"))

    assert dedup_key(utc) == dedup_key(shifted)
    assert dedup_key(utc) != dedup_key(other_status)
