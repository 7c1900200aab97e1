"""Gunicorn's own records (start-up, errors) in the app's one-JSON-object-a-line format."""

from __future__ import annotations

from typing import Any

from gunicorn import glogging

from service.platform.logs import JsonFormatter


class JsonLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own records as JSON lines; access lines come from the app instead
    (service/platform/access_log.py)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())
