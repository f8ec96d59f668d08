"""One live ``SessionState`` per session id and store, shared by every recorder.

A ``SessionManager`` and a wrapped client that record into the same session must share
one state, or they would number events twice. The registry of a store hands out that
state: found in memory, loaded from the store, or created. Recently used states are
kept; others live as long as something holds them and are reloaded on demand.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from typing import Any

from sessionware.core.errors import SessionAlreadyExists, SessionNotFound
from sessionware.core.session.models import Session, SessionInfo, SessionTotals
from sessionware.core.session.state import SessionState
from sessionware.core.store.base import CreateSession
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

    def _from_session(self, session: Session) -> SessionState:
        info = SessionInfo(**{k: v for k, v in session.__dict__.items() if k not in ("children", "events")})
        return self._adopt(SessionState(info, list(session.events), self.store))

    def _new(self, session_id: str, header: dict[str, Any]) -> SessionState:
        info = SessionInfo(id=session_id, **header)
        state = SessionState(info, [], self.store)
        with self._lock:
            existing = self._alive.get(session_id)
            if existing is not None:
                return existing
            self.store.submit([CreateSession(_detached(info, header))])
            self._alive[session_id] = state
        self._touch(state)
        return state

    # -- async --------------------------------------------------------------------

    async def open(self, session_id: str, *, create: bool | None = None, **header: Any) -> SessionState:
        """The state of ``session_id``.

        ``create=None`` loads it or creates it; ``True`` requires that it does not exist
        (``SessionAlreadyExists``); ``False`` requires that it does (``SessionNotFound``).
        ``header`` fields (``parent_id``, ``metadata``, ``system_prompt``) apply on create.
        """
        state = self.cached(session_id)
        if state is not None:
            if create:
                raise SessionAlreadyExists(session_id, store=self.store.location)
            return state
        if create is not True:
            try:
                return self._from_session(await self.store.load(session_id))
            except SessionNotFound:
                if create is False:
                    raise
        elif await self.store.exists(session_id):
            raise SessionAlreadyExists(session_id, store=self.store.location)
        return self._new(session_id, header)

    # -- sync twin, for sync SDK clients and the CLI ------------------------------

    def open_sync(self, session_id: str, *, create: bool | None = None, **header: Any) -> SessionState:
        state = self.cached(session_id)
        if state is not None:
            if create:
                raise SessionAlreadyExists(session_id, store=self.store.location)
            return state
        if create is not True:
            try:
                return self._from_session(self.store.load_sync(session_id))
            except SessionNotFound:
                if create is False:
                    raise
        elif self.store.exists_sync(session_id):
            raise SessionAlreadyExists(session_id, store=self.store.location)
        return self._new(session_id, header)

    def forget(self, session_id: str) -> None:
        """Drop the live state (after a delete)."""
        with self._lock:
            self._alive.pop(session_id, None)
            self._recent.pop(session_id, None)
            self.generation += 1
