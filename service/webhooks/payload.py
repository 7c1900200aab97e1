"""Reading a webhook body: size limit first, strict JSON, nothing the database would refuse."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import IO, Any

import orjson

from service.errors import FieldProblem, MalformedJson, UnreadableBody, ValidationFailed

READ_CHUNK_BYTES = 16 * 1024
MAX_NESTING = 64


@contextmanager
def body_deadline(environ: Mapping[str, Any], seconds: float) -> Iterator[float]:
    """The monotonic time by which the body must have arrived.

    Under gunicorn a read asks for a whole chunk and waits until it is full, so a sender
    trickling a byte at a time would never let the caller look at the clock: when the time is
    up, the socket's reading side is shut, the pending read ends, and the answer can still go out.
    """
    deadline = time.monotonic() + seconds
    sock = environ.get("gunicorn.socket")
    if sock is None:
        yield deadline
        return
    ticket = _WATCHDOG.watch(sock, deadline)
    try:
        yield deadline
    finally:
        _WATCHDOG.forget(ticket)


class _BodyWatchdog:
    """One thread per process shuts the reading side of sockets whose body is overdue: arming a
    timer per request would start a thread per request.

    Requests add and remove their entry with single dict operations, which the interpreter makes
    atomic, so the hot path takes no lock (under gevent a lock is Python code, not a C call).
    """

    TICK_SECONDS = 0.25

    def __init__(self) -> None:
        self._watched: dict[int, tuple[float, Any]] = {}
        self._tickets = itertools.count()
        self._running_in: int | None = None  # the pid whose thread is watching

    def watch(self, sock: Any, deadline: float) -> int:
        ticket = next(self._tickets)
        self._watched[ticket] = (deadline, sock)
        if self._running_in != os.getpid():
            # Started in the process that serves (gunicorn forks after importing the app).
            self._running_in = os.getpid()
            threading.Thread(target=self._run, name="body-watchdog", daemon=True).start()
        return ticket

    def forget(self, ticket: int) -> None:
        self._watched.pop(ticket, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_SECONDS)
            now = time.monotonic()
            overdue = [t for t, (deadline, _) in list(self._watched.items()) if deadline <= now]
            for ticket in overdue:
                entry = self._watched.pop(ticket, None)
                if entry is not None:
                    with suppress(OSError):  # already closed: nothing left to stop
                        entry[1].shutdown(socket.SHUT_RD)


_WATCHDOG = _BodyWatchdog()


def read_limited(
    stream: IO[bytes],
    limit: int,
    declared_length: int | None = None,
    deadline: float | None = None,
) -> tuple[bytes, bool]:
    """Read at most `limit` bytes; the flag says whether the body went on past the limit.

    `declared_length` is the Content-Length: a body that ends short of it was cut off in transit,
    and its fragment must not be taken (or quarantined) as what the sender meant. A body still
    arriving at `deadline` (time.monotonic) is given up on: a trickle of bytes holds a thread.
    """
    chunks: list[bytes] = []
    remaining = limit + 1
    while remaining > 0:
        if deadline is not None and time.monotonic() > deadline:
            raise UnreadableBody("the body took too long to arrive")
        try:
            chunk = stream.read(min(READ_CHUNK_BYTES, remaining))
        except Exception as error:  # the WSGI server's own types: gunicorn's, werkzeug's, ...
            raise UnreadableBody(type(error).__name__) from None
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    if deadline is not None and time.monotonic() > deadline:
        raise UnreadableBody("the body took too long to arrive")
    body = b"".join(chunks)
    if declared_length is not None and len(body) < min(declared_length, limit + 1):
        raise UnreadableBody("the connection closed before Content-Length bytes arrived")
    return body[:limit], len(body) > limit


def is_json_content_type(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def parse_json(body: bytes) -> Any:
    """orjson refuses NaN, lone surrogates and invalid UTF-8; we also bound nesting and NULs."""
    if not body.strip():
        raise MalformedJson("the body is empty")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedJson(str(error).split(":", 1)[0]) from None
    if not _may_be_unstorable(body):
        return document
    _check_storable(document)
    return document


def _may_be_unstorable(body: bytes) -> bool:
    """Whether the walk below is needed: two scans in C rule it out for ordinary bodies.

    Valid JSON can only carry a NUL as the escape `\\u0000`, and cannot nest deeper than it has
    brackets; a body with neither needs no walk through every value.
    """
    return b"\\u0000" in body or body.count(b"{") + body.count(b"[") > MAX_NESTING


def _check_storable(document: Any) -> None:
    """Walk without recursion: a deeply nested body must not be able to exhaust the stack."""
    pending: list[tuple[Any, str, int]] = [(document, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_NESTING:
            raise MalformedJson(f"nesting is deeper than {MAX_NESTING} levels")
        if isinstance(value, str):
            _refuse_nul(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                _refuse_nul(key, child)
                pending.append((item, child, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                pending.append((item, f"{path}.{index}" if path else str(index), depth + 1))


def _refuse_nul(text: str, path: str) -> None:
    # PostgreSQL text and jsonb cannot hold U+0000, so such a body could never be stored.
    if "\x00" in text:
        shown = path.replace("\x00", "\\u0000")
        raise ValidationFailed([FieldProblem(shown, "contains a NUL (\\u0000) character")])
