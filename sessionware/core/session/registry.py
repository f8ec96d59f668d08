"""One live ``SessionState`` per session id and store, shared by every recorder.

A ``SessionManager`` and a wrapped client that record into the same session must share
one state, or they would number events twice. The registry of a store hands out that
state: found in memory, loaded from the store, or created. Recently used states are
kept; others live as long as something holds them and are reloaded on demand.

Session ids are checked at this door (``check_session_id``). A session opened while the
store is unreachable is not refused: its state starts unconfirmed (see ``SessionState``)
and its creation queues with every other write, "open or create", so nothing recorded
during an outage is lost. After a store lost its data (a Redis restarted empty), the registry
hands the store what to write again: every session it still holds.
"""

from __future__ import annotations

import copy
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import Any

from sessionware.core.errors import SessionAlreadyExists, SessionNotFound, StorageError
from sessionware.core.session.models import SessionEvent, SessionInfo, SessionTotals
from sessionware.core.session.state import SessionState
from sessionware.core.session.storable import check_session_id
from sessionware.core.store.base import AppendEvents, CreateSession, SaveHeader, WriteOp
from sessionware.core.store.store import Store

__all__ = ["SessionRegistry", "registry_for"]

_registries: weakref.WeakKeyDictionary[Store, SessionRegistry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def _detached(info: SessionInfo, header: dict[str, Any]) -> SessionInfo:
    """A copy of a new session's header that shares nothing the live state changes in place.

    ``model_copy(deep=True)`` (``copy.deepcopy`` of every nested model) costs ~33 µs warm and
    several times that on the path of the app's call that starts a session; this ~6 µs. The
    totals of a new session are fresh unless its header set them, so only the containers it
    was given are copied deeply.
    """
    totals = info.totals.model_copy(deep=True) if "totals" in header else SessionTotals()
    return info.model_copy(
        update={"metadata": copy.deepcopy(info.metadata), "runs": copy.deepcopy(info.runs), "totals": totals}
    )


def registry_for(store: Store) -> SessionRegistry:
    """The registry of ``store`` (one per store object)."""
    try:
        return _registries[store]
    except KeyError:
        with _registries_lock:
            if store not in _registries:
                _registries[store] = SessionRegistry(store)
            return _registries[store]


class SessionRegistry:
    """Live session states of one store."""

    def __init__(self, store: Store, *, keep_recent: int = 1024) -> None:
        self.store = store
        self.keep_recent = keep_recent
        self._lock = threading.Lock()
        self._alive: weakref.WeakValueDictionary[str, SessionState] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[str, SessionState] = OrderedDict()
        self.generation = 0
        """Counts ``forget`` calls: a state remembered elsewhere is still the live one of its
        session while this has not changed (a cheaper check than ``cached`` on a hot path)."""
        store.add_recovery(self.recovery_ops)

    def cached(self, session_id: str) -> SessionState | None:
        state = self._alive.get(session_id)
        if state is not None:
            self._touch(state)
        return state

    def _touch(self, state: SessionState) -> None:
        with self._lock:
            self._recent[state.id] = state
            self._recent.move_to_end(state.id)
            while len(self._recent) > self.keep_recent:
                self._recent.popitem(last=False)

    def _adopt(self, state: SessionState) -> SessionState:
        """Register ``state`` unless another thread got there first; return the winner."""
        with self._lock:
            existing = self._alive.get(state.id)
            if existing is not None:
                return existing
            self._alive[state.id] = state
        self._touch(state)
        return state

    def _from_read(self, read: tuple[int, SessionInfo, list[SessionEvent]]) -> SessionState:
        acked, info, events = read
        return self._adopt(SessionState(info, events, self.store, acked=acked))

    def _new(
        self, session_id: str, header: dict[str, Any], *, exclusive: bool = False, confirmed: bool = True
    ) -> SessionState:
        info = SessionInfo(id=session_id, **header)
        state = SessionState(info, [], self.store, confirmed=confirmed)
        with self._lock:
            existing = self._alive.get(session_id)
            if existing is not None:
                return existing
            self.store.submit([CreateSession(_detached(info, header), exclusive=exclusive)])
            self._alive[session_id] = state
        self._touch(state)
        return state

    def _unreachable(
        self, session_id: str, header: dict[str, Any], exc: StorageError, create: bool | None
    ) -> SessionState:
        """The store could not be read: an unconfirmed state whose creation waits in the queue."""
        if not exc.retryable or create is False:
            raise exc
        return self._new(session_id, header, exclusive=bool(create), confirmed=False)

    # -- async --------------------------------------------------------------------

    async def aopen(self, session_id: str, *, create: bool | None = None, **header: Any) -> SessionState:
        """The state of ``session_id`` (``open`` is the blocking twin).

        ``create=None`` loads it or creates it; ``True`` requires that it does not exist
        (``SessionAlreadyExists``); ``False`` requires that it does (``SessionNotFound``).
        ``header`` fields (``parent_id``, ``metadata``, ``system_prompt``) apply on create.
        """
        state = self.cached(session_id)
        if state is not None:
            if create:
                raise SessionAlreadyExists(session_id, store=self.store.location)
            return state
        check_session_id(session_id, "open")
        try:
            if create is not True:
                try:
                    return self._from_read(await self.store.aread_since(session_id, 0))
                except SessionNotFound:
                    if create is False:
                        raise
            elif await self.store.aexists(session_id):
                raise SessionAlreadyExists(session_id, store=self.store.location)
        except StorageError as exc:
            return self._unreachable(session_id, header, exc, create)
        return self._new(session_id, header, exclusive=bool(create))

    # -- sync twin, for sync SDK clients and the CLI ------------------------------

    def open(self, session_id: str, *, create: bool | None = None, **header: Any) -> SessionState:
        """``aopen`` for sync code: blocks the calling thread while the store is read."""
        state = self.cached(session_id)
        if state is not None:
            if create:
                raise SessionAlreadyExists(session_id, store=self.store.location)
            return state
        check_session_id(session_id, "open")
        try:
            if create is not True:
                try:
                    return self._from_read(self.store.read_since(session_id, 0))
                except SessionNotFound:
                    if create is False:
                        raise
            elif self.store.exists(session_id):
                raise SessionAlreadyExists(session_id, store=self.store.location)
        except StorageError as exc:
            return self._unreachable(session_id, header, exc, create)
        return self._new(session_id, header, exclusive=bool(create))

    def open_sync(self, session_id: str, *, create: bool | None = None, **header: Any) -> SessionState:
        """Deprecated: ``open``."""
        warnings.warn(
            "SessionRegistry.open_sync is deprecated and will be removed in the next release;"
            " use SessionRegistry.open (async twin: SessionRegistry.aopen)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.open(session_id, create=create, **header)

    def recovery_ops(self) -> list[WriteOp]:
        """Writes that put every session this registry holds back in an emptied store.

        Runs on the store's writer thread after the store lost its data: it takes no session
        lock (a thread holding one may be waiting for that writer). Each state then
        reads the whole stored log at its next look.
        """
        ops: list[WriteOp] = []
        for state in list(self._alive.values()):
            info, events = state.recovery_snapshot()
            header = info.model_copy(update={"totals": SessionTotals(), "last_seq": 0})
            ops.append(CreateSession(header, exclusive=False))
            ops.append(SaveHeader(info))
            if events:
                ops.append(AppendEvents(info.id, events))
            state.unconfirm()
        return ops

    def forget(self, session_id: str) -> None:
        """Drop the live state (after a delete)."""
        with self._lock:
            self._alive.pop(session_id, None)
            self._recent.pop(session_id, None)
            self.generation += 1
