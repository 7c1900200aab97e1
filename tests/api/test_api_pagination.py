"""Cursors and the key that signs them, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.api.cursors import CursorError, cursor_key, cursor_scope, decode_cursor, encode_cursor
from service.config import ConfigError, Settings
from service.platform.pages import Position, page_of

KEY = cursor_key(b"k" * 32)
SCOPE = cursor_scope("jobs", {"status": [9]})
WHEN = datetime(2026, 11, 25, 10, 0, 30, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "position", [Position(WHEN, "JOB-1"), Position(None, "JOB-2"), Position(WHEN, 42)]
)
def test_a_cursor_round_trips_its_position(position: Position) -> None:
    cursor = encode_cursor(position, SCOPE, KEY)
    assert decode_cursor(cursor, SCOPE, KEY) == position
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # safe in a URL


def test_a_cursor_is_refused_with_another_key_or_scope() -> None:
    cursor = encode_cursor(Position(WHEN, "JOB-1"), SCOPE, KEY)
    with pytest.raises(CursorError):
        decode_cursor(cursor, SCOPE, cursor_key(b"other" * 8))
    with pytest.raises(CursorError):
        decode_cursor(cursor, cursor_scope("jobs", {"status": [6]}), KEY)
    with pytest.raises(CursorError):
        decode_cursor(cursor, cursor_scope("rejected-deliveries", {}), KEY)


@pytest.mark.parametrize("cursor", ["", ".", "abc", "abc.def", "!!!.???", "a.b.c"])
def test_garbage_is_a_cursor_error(cursor: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(cursor, SCOPE, KEY)


def test_scope_ignores_filter_order() -> None:
    assert cursor_scope("jobs", {"a": 1, "b": 2}) == cursor_scope("jobs", {"b": 2, "a": 1})


def test_page_of_uses_the_extra_row_only_to_know_there_is_more() -> None:
    def position(row: int) -> Position:
        return Position(None, row)

    assert page_of([5, 4, 3], 2, position) == ([5, 4], Position(None, 4))
    assert page_of([5, 4], 2, position) == ([5, 4], None)
    assert page_of([], 2, position) == ([], None)


def test_secret_key_is_stable_for_the_same_credentials_in_any_order() -> None:
    first = Settings(api_tokens=("a", "b"), basic_auth=(("mx", "pw"),))
    second = Settings(api_tokens=("b", "a"), basic_auth=(("mx", "pw"),))
    assert first.secret_key == second.secret_key
    assert len(first.secret_key) == 32
    rotated = Settings(api_tokens=("a", "c"), basic_auth=(("mx", "pw"),))
    assert rotated.secret_key != first.secret_key


def test_secret_key_setting_wins_and_must_be_long_enough() -> None:
    settings = Settings.from_env({"SECRET_KEY": "s" * 40, "API_TOKENS": "a"})
    assert settings.secret_key == b"s" * 40
    assert "s" * 40 not in repr(settings)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"SECRET_KEY": "short"})
