"""Which session a wrapped call records into, chosen by the code around the call.

``with sessionware.session("ticket-42", user="ana"):`` makes every wrapped call inside
the block record into session ``ticket-42`` (created with that metadata if new). The
scope lives in a ``contextvars.ContextVar``: each asyncio task sees the scopes of the
code that created it, and concurrent tasks or threads never see each other's. A new
``threading.Thread`` starts outside any scope (run it with
``contextvars.copy_context().run`` to carry one over).

``sessionware.current_session()`` returns the session the last wrapped call of this
context recorded into when that call was made in the innermost scope (or outside any),
else the innermost scope's session: an app that never names sessions can still read the
stats of the one it is in, and a client pinned with ``wrap(..., session_id=...)`` inside
a scope reads the session it recorded into, not the scope's.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Any, Protocol

from sessionware.core.defaults import default_store
from sessionware.core.session.messages import events_to_messages
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.session.stats import SessionStats
from sessionware.core.session.storable import check_session_id
from sessionware.core.store.store import Store

__all__ = ["SessionHandle", "SessionScope", "current_session", "session"]

_HANDLE_EXTENSION = "sessionware.adapters.handle"

_scope: contextvars.ContextVar[SessionScope | None] = contextvars.ContextVar(
    "sessionware_scope", default=None
)
_last: contextvars.ContextVar[SessionHandle | PendingSession | None] = contextvars.ContextVar(
    "sessionware_last", default=None
)
# The scope that was innermost when the last call was noted: inside a scope, that call's
# session is current only when it was made in this very scope (a client pinned to
# another session records there, and the app reads where its calls went).
_last_scope: contextvars.ContextVar[SessionScope | None] = contextvars.ContextVar(
    "sessionware_last_scope", default=None
)


class PendingSession(Protocol):
    """A call whose session is worked out after it returned (observe mode)."""

    def handle(self) -> SessionHandle | None:
        """The call's session (working out every call queued before it), or None if that failed."""
        ...


class SessionHandle:
    """A session that wrapped calls record into, for the app to read.

    Reads go to the live session state, so they see every call recorded so far
    without waiting for the store.
    """

    __slots__ = ("_store", "id", "metadata")

    def __init__(self, session_id: str, metadata: dict[str, Any] | None = None, store: Store | None = None):
        self.id = session_id
        self.metadata = dict(metadata or {})
        self._store = store

    def __repr__(self) -> str:
        return f"SessionHandle({self.id!r})"

    @property
    def store(self) -> Store:
        """The store wrapped calls recorded this session into (the default store before any)."""
        return self._store if self._store is not None else default_store()

    def bind(self, store: Store) -> None:
        """Read this session from ``store`` (wrapped calls bind the store they record into)."""
        self._store = store

    @property
    def state(self) -> SessionState:
        registry = registry_for(self.store)
        return registry.cached(self.id) or registry.open(self.id)

    def _following(self) -> SessionState:
        state = self.state
        state.follow()  # what other processes appended to the session too
        return state

    def stats(self) -> SessionStats:
        """Tokens, cost, calls and messages of the session so far."""
        return SessionStats.from_infos([self._following().info])

    def events(self) -> list[SessionEvent]:
        state = self._following()
        with state.lock:
            return list(state.events)

    def messages(self, *, include_system: bool = True) -> list[dict[str, Any]]:
        """The conversation as an OpenAI chat message list."""
        state = self._following()
        with state.lock:
            prompt = state.info.system_prompt if include_system else None
            return events_to_messages(state.events, system_prompt=prompt)

    def flush(self) -> None:
        """Block until the session's events are in the store."""
        self.store.flush()

    async def aflush(self) -> None:
        await self.store.aflush()


class SessionScope:
    """The context manager ``session()`` returns; usable with ``with`` and ``async with``.

    One scope object is entered once at a time; create one per block.
    """

    __slots__ = ("_tokens", "handle")

    def __init__(self, session_id: str, metadata: dict[str, Any]) -> None:
        check_session_id(session_id, "session")
        self.handle = SessionHandle(session_id, metadata)
        self._tokens: list[contextvars.Token[SessionScope | None]] = []

    @property
    def id(self) -> str:
        return self.handle.id

    def __enter__(self) -> SessionHandle:
        self._tokens.append(_scope.set(self))
        return self.handle

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _scope.reset(self._tokens.pop())

    async def __aenter__(self) -> SessionHandle:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def session(session_id: str, /, **metadata: Any) -> SessionScope:
    """Record wrapped calls inside the block into ``session_id``.

    ``metadata`` is stored on the session (set at creation, merged into an existing one).

    >>> import sessionware
    >>> with sessionware.session("support-42", user="ana") as s:
    ...     s.id
    'support-42'
    """
    return SessionScope(session_id, metadata)


def current_session() -> SessionHandle | None:
    """The session of this context's last wrapped call if it was made in the innermost
    ``session()`` scope (or no scope is active), else that scope's session, else None.

    >>> with session("support-42"):
    ...     current_session().id
    'support-42'
    """
    scope = _scope.get()
    last = _last.get()
    if last is None or (scope is not None and _last_scope.get() is not scope):
        return scope.handle if scope is not None else None
    handle = last if isinstance(last, SessionHandle) else last.handle()
    if scope is not None and (handle is None or handle.id == scope.id):
        return scope.handle  # the scope's own session: the handle the app was given
    return handle


def active_scope() -> SessionScope | None:
    """The innermost scope (for the adapters)."""
    return _scope.get()


def handle_of(state: SessionState) -> SessionHandle:
    """The app's handle on ``state`` (one per session state)."""
    handle: SessionHandle | None = state.extensions.get(_HANDLE_EXTENSION)
    if handle is None:
        handle = state.extensions[_HANDLE_EXTENSION] = SessionHandle(state.id, store=state.store)
    return handle


def _note_scope() -> None:
    scope = _scope.get()
    if _last_scope.get() is not scope:  # setting allocates; most calls stay in one scope
        _last_scope.set(scope)


def note_session(state: SessionState) -> None:
    """Remember ``state`` as this context's last recorded-into session."""
    handle = handle_of(state)
    if _last.get() is not handle:  # setting allocates; most calls continue the same session
        _last.set(handle)
    _note_scope()


def note_pending(call: PendingSession) -> None:
    """Remember ``call``, whose session is not known yet, as this context's last call."""
    _last.set(call)
    _note_scope()
