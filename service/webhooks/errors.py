"""The inbound edge's domain errors that reach operators rather than MX."""

from __future__ import annotations


class ReplayRefused(Exception):
    """The delivery cannot be replayed: unknown, already replayed, or still invalid."""
