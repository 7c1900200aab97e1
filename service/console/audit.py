"""Every console action as one JSON log line: what changed, and which API token did it (by its
fingerprint; the token itself is never logged)."""

from __future__ import annotations

import logging
from typing import Any

from service.console.blueprint import operator
from service.platform.logs import log

logger = logging.getLogger("jobhooks.console")


def record_action(action: str, **changed: Any) -> None:
    who = operator()
    log(
        logger,
        "console action",
        action=action,
        token_fingerprint=who.token_fingerprint,
        operator_name=who.name,
        **changed,
    )
