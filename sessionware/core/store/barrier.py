"""The deferral barrier: records whose work was put off, settled before anything reads.

Recorders may hand work to a background thread instead of doing it on the app's path
(the SDK adapters do). Two kinds of such work wait here, one barrier per ``Store``:

* **unsettled sessions**: a ``SessionState`` holding deferred records registers while it
  does (``add_unsettled``); ``settle`` runs them;
* **unresolved calls**: work that first has to find its session (``defer_unresolved``),
  queued in call order; ``resolve`` runs it, and it defers its records on the session
  it finds.

The ``Store`` asks the barrier before every flush, read and delete (a read or delete of
one session settles that session only), so what is flushed, read or deleted includes
every record made before it. Live sessions ask it before their own reads and writes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["DeferralBarrier", "Settles"]


class Settles(Protocol):
    """A session holding deferred records (a ``SessionState``)."""

    @property
    def id(self) -> str: ...

    def settle(self) -> None:
        """Run its deferred records (waiting while another thread runs them), then take
        itself out of the barrier's ``unsettled`` set."""
        ...


class DeferralBarrier:
    """Deferred work of one store's sessions. Thread-safe.

    ``unresolved`` and ``unsettled`` are the queue and the set themselves, read (never
    written) by the recording hot path: their truth values are the cheapest "anything
    deferred?" there is.
    """

    __slots__ = ("_lock", "_resolving", "blocking", "unresolved", "unsettled")

    def __init__(self, *, blocking: bool) -> None:
        self.blocking = blocking
        """Whether resolving may wait on I/O (then ``aresolve`` runs it off the event loop)."""
        self.unresolved: deque[Callable[[], None]] = deque()
        self.unsettled: set[Settles] = set()
        self._lock = threading.RLock()
        self._resolving: int | None = None

    @property
    def pending(self) -> bool:
        """True while any session holds deferred records or any call waits to be resolved."""
        return bool(self.unsettled) or bool(self.unresolved)

    # -- unsettled sessions -------------------------------------------------------------

    def add_unsettled(self, holder: Settles) -> None:
        """``holder`` has deferred records: settle it before flushes and reads."""
        self.unsettled.add(holder)

    def discard_unsettled(self, holder: Settles) -> None:
        self.unsettled.discard(holder)

    def settle(self, session_id: str | None = None) -> None:
        """Resolve queued calls, then apply the deferred records of every session, or of
        ``session_id`` alone (on this thread)."""
        if self.unresolved:
            self.resolve()
        if session_id is not None:
            for holder in list(self.unsettled):
                if holder.id == session_id:
                    holder.settle()
            return
        # A holder stays in the set until its own ``settle`` has run its records (it
        # takes itself out then), so a thread that finds it there while another thread
        # (the recorder) runs those records waits for them, and a flush or close after
        # this sees every record made before it submitted. Each holder once per call:
        # one left in the set (its settle returned at once, on the thread running it)
        # must not make this spin.
        seen: set[Settles] = set()
        while True:
            todo = [holder for holder in list(self.unsettled) if holder not in seen]
            if not todo:
                return
            for holder in todo:
                seen.add(holder)
                holder.settle()

    # -- unresolved calls -----------------------------------------------------------------

    def defer_unresolved(self, work: Callable[[], None]) -> bool:
        """Queue ``work`` that finds its session and defers its records there, to run
        (``resolve``) before anything reads the store or any of its live sessions.

        Returns True when nothing was queued before: the caller must then see that
        ``resolve`` runs soon.
        """
        unresolved = self.unresolved
        unresolved.append(work)
        return len(unresolved) == 1

    @property
    def resolving(self) -> bool:
        """True on the thread running ``resolve`` while it does."""
        return self._resolving == threading.get_ident()

    def resolve(self) -> None:
        """Run the queued unresolved work, in order (a no-op inside it).

        The work only opens sessions and defers records on them: it takes no session's
        lock, so a thread holding one may resolve while another thread records.
        """
        if not self.unresolved:
            return
        me = threading.get_ident()
        if self._resolving == me:
            return
        with self._lock:
            self._resolving = me
            try:
                unresolved = self.unresolved
                while unresolved:
                    unresolved.popleft()()
            finally:
                self._resolving = None

    async def aresolve(self) -> None:
        """``resolve`` without blocking the event loop: on a worker thread when working
        out a session may wait on the backend."""
        if not self.unresolved:
            return
        if self.blocking and not self.resolving:
            import asyncio  # here: only ever needed inside a running event loop (import time)

            await asyncio.to_thread(self.resolve)
        else:
            self.resolve()

    async def acaught_up(self, session_id: str | None = None) -> None:
        """Before an async read: resolve (off the event loop when that may block), then
        settle ``session_id`` or every session."""
        if self.unresolved:
            await self.aresolve()
        if self.unsettled or self.unresolved:
            self.settle(session_id)

    def after_fork(self) -> None:
        """In a forked child: locks of the parent's threads are not ours."""
        self._lock = threading.RLock()
        self._resolving = None
