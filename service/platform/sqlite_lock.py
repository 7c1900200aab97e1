"""SQLite's single writer, queued on a file lock rather than in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import AbstractContextManager, nullcontext


class SqliteWriterLock:
    """SQLite's one writer at a time, queued in the kernel instead of by SQLite's busy handler.

    A writer that finds the database locked sleeps 1, 2, 5, 10... ms between retries, so with two
    web processes most of a transaction's time went to sleeping while the lock sat free. An
    exclusive flock on a file beside the database wakes the next writer the moment it is free;
    the thread lock orders this process's own threads, which share the one file descriptor.
    """

    def __init__(self, path: str) -> None:
        self._threads = threading.Lock()
        self._file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> SqliteWriterLock:
        self._threads.acquire()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()


_writer_locks: dict[str, SqliteWriterLock] = {}
_writer_locks_guard = threading.Lock()


def sqlite_writer_lock(database: str | None) -> AbstractContextManager[object]:
    """The writer lock of one SQLite file, shared by every engine of this process on that file."""
    if not database or database == ":memory:":
        return nullcontext()
    path = os.path.abspath(database) + "-writer.lock"
    with _writer_locks_guard:
        lock = _writer_locks.get(path)
        if lock is None:
            lock = _writer_locks[path] = SqliteWriterLock(path)
    return lock
