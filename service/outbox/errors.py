"""The outbox's domain errors; the app maps each to its HTTP answer once."""

from __future__ import annotations


class RetryRefused(Exception):
    """Only a dead run can be re-queued by hand; the message says what state it is in."""


class UnknownHandler(LookupError):
    """No handler of that name is registered (built-in or entry point)."""
