"""Per-session locks shared by every process of a store (``SessionLocking``).

Recording a conversation call diffs the request against the session's log and appends
what is new. Two processes doing that for consecutive turns of one conversation (proxy
workers, web workers behind a load balancer) can both read the log before either
commits, and both append the same turn. The store orders appends, but it cannot tell
that two appends carry the same messages under different event ids. So a recorder that
diffs holds the session's lock from its read until its append is committed
(``Store.exclusive``); appends that do not diff never take it.

Each backend that can be shared implements ``lock_session``:

* SQLite: a POSIX byte-range lock (``fcntl.lockf``) on a file beside the database, one
  byte per session (by hash); the kernel releases it when the process dies.
* Redis: ``SET key token NX PX lease``, released by a script only by its holder; a
  holder that died leaves the key to expire after the lease.
* PostgreSQL: a session-level advisory lock on a pooled connection; the server releases
  it when the connection closes.

A lock is waited for up to a timeout and then the recorder goes on without it (a store
outage, a stuck holder): recording must never stall the app for long, so this makes the
duplicate rare and bounded, not impossible in every failure.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_LOCK_TIMEOUT", "FileRangeLocks", "SessionLocking", "lock_slot", "poll"]

#: Seconds a recorder waits for another process to release a session.
DEFAULT_LOCK_TIMEOUT = 5.0

_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.025


@runtime_checkable
class SessionLocking(Protocol):
    """A backend whose sessions can be locked across processes (see the module docstring)."""

    def lock_session(self, session_id: str, timeout: float) -> AbstractContextManager[bool]:
        """Hold ``session_id`` against every other process for the ``with`` block; yields
        False when it could not within ``timeout`` seconds (the block runs unlocked).
        Raises ``StorageError`` when the store is unreachable."""
        ...


def poll(attempt: Callable[[], bool], timeout: float) -> bool:
    """Call ``attempt`` until it returns True or ``timeout`` seconds passed, pausing a
    little longer after each miss (1 ms up to 25 ms); its last answer."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE
    while True:
        if attempt():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, _LONGEST_PAUSE)


def lock_slot(session_id: str) -> int:
    """A stable 32-bit number for ``session_id`` (the same in every process and host).

    >>> lock_slot("s1") == lock_slot("s1")
    True
    """
    return zlib.crc32(session_id.encode("utf-8", "surrogatepass"))


class _LockFile:
    """One lock file of this process: its descriptor and a thread lock per byte."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.guard = threading.Lock()
        self.bytes: dict[int, threading.Lock] = {}

    def thread_lock(self, slot: int) -> threading.Lock:
        with self.guard:
            lock = self.bytes.get(slot)
            if lock is None:
                lock = self.bytes[slot] = threading.Lock()
            return lock


_files: dict[str, _LockFile] = {}
_files_guard = threading.Lock()
_fork_hook_installed = False


def _forget_after_fork() -> None:
    """In a forked child: fork passes on no record lock, and the thread locks may be
    held by threads that do not exist here; the child opens its own on first use."""
    global _files_guard
    for file in _files.values():
        with suppress(OSError):
            os.close(file.fd)  # holds no lock of this process: closing drops nothing
    _files.clear()
    _files_guard = threading.Lock()


def _lock_file(path: Path) -> _LockFile:
    global _fork_hook_installed
    key = os.path.realpath(path)
    with _files_guard:
        file = _files.get(key)
        if file is None:
            # 0600 like the database beside it; it holds no data, only locks.
            fd = os.open(key, os.O_RDWR | os.O_CREAT, stat.S_IRUSR | stat.S_IWUSR)
            file = _files[key] = _LockFile(fd)
            if not _fork_hook_installed and hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_forget_after_fork)
                _fork_hook_installed = True
        return file


class FileRangeLocks:
    """Session locks as byte-range locks on one file (POSIX only).

    POSIX record locks belong to the process, not to a thread or a descriptor: a second
    thread of the holder would "get" the same byte at once, and closing any descriptor
    of the file drops every lock the process holds on it. So each lock file is opened
    once per process and stays open (shared by every store on the same database), and
    a thread lock per byte keeps this process' threads, and its stores, apart first.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def supported(self) -> bool:
        try:
            import fcntl  # noqa: F401  (POSIX only)
        except ImportError:  # pragma: no cover - Windows
            return False
        return True

    @contextmanager
    def hold(self, session_id: str, timeout: float) -> Iterator[bool]:
        """Hold the session's byte; yields False when not within ``timeout`` (OSError if
        the lock file cannot be opened)."""
        import fcntl  # POSIX only: callers check ``supported`` first

        file = _lock_file(self.path)
        slot = lock_slot(session_id)
        local = file.thread_lock(slot)
        if not local.acquire(timeout=timeout):
            yield False
            return
        try:

            def attempt() -> bool:
                try:
                    fcntl.lockf(file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except (BlockingIOError, PermissionError):
                    return False
                return True

            held = poll(attempt, timeout)
            try:
                yield held
            finally:
                if held:
                    fcntl.lockf(file.fd, fcntl.LOCK_UN, 1, slot)
        finally:
            local.release()
