"""The console: every page module registers its routes on the one blueprint, exported here."""

from __future__ import annotations

from service.console import (  # noqa: F401 - imported for the routes they register
    handler_pages,
    job_pages,
    member_pages,
    overview_page,
    quarantine_pages,
    run_pages,
)
from service.console.blueprint import bp

__all__ = ["bp"]
