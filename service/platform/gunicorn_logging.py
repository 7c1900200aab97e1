"""Gunicorn's own logs (errors and access) in the app's one-JSON-object-a-line format."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from gunicorn import glogging

from service.platform.logs import JsonFormatter, log


class JsonLogger(glogging.Logger):  # type: ignore[misc]
    """Access lines carry method, path, status, duration and request id — never a header value."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        response_headers = dict(resp.headers) if resp.headers else {}
        log(
            self.access_log,
            "request",
            logging.INFO,
            request_id=response_headers.get("X-Request-ID"),
            method=environ.get("REQUEST_METHOD"),
            path=environ.get("PATH_INFO"),
            status=int(status),
            duration_ms=round(request_time.total_seconds() * 1000, 3),
            bytes=getattr(resp, "sent", None),
            remote_addr=environ.get("REMOTE_ADDR"),
            pid=os.getpid(),
        )
