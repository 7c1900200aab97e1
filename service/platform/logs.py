"""Structured logs: one JSON object a line, with the request id; secrets never reach a record."""

from __future__ import annotations

import logging
import random
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import g, has_request_context

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The request id of a request served outside Flask (the job callbacks' fast path), which has no
# `g` to keep it in; one value per thread or greenlet.
OUTSIDE_FLASK_REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_configured = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return _one_line(orjson.dumps(entry, default=str).decode())


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "request_id"):
            return True
        if has_request_context():
            record.request_id = g.get("request_id")
        else:
            record.request_id = OUTSIDE_FLASK_REQUEST_ID.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Idempotent: gunicorn workers and the CLI both call it."""
    global _configured
    if _configured:
        return
    # Our lines carry none of the caller's file, thread or process names; the logging HOWTO's
    # "Optimization" section names these switches to stop every record from looking them up
    # (the caller's frame walk most of all), which every webhook request would pay for.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    _configured = True


def request_id_from(header: str | None) -> str:
    """Honour the caller's X-Request-ID when it is sane, so logs join up across services."""
    if header and REQUEST_ID_PATTERN.match(header):
        return header
    # 128 random bits as 32 hex digits, the shape of a uuid4's hex: an id must be unique, not
    # secret, and uuid4 asks the kernel for its bits (a system call per request). The random
    # module reseeds in every forked worker.
    return f"{random.getrandbits(128):032x}"


def log(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})


# Valid in JSON strings as they are, but line breaks to many log readers: a value sent by a client
# must not start what looks like a new log line.
LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_BREAK_TABLE = str.maketrans(LINE_BREAKS)


def _one_line(text: str) -> str:
    # An ASCII line has none of them, and telling so is far cheaper than translating it.
    return text if text.isascii() else text.translate(_LINE_BREAK_TABLE)
