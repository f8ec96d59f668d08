"""The one exception hierarchy of sessionware.

::

    SessionwareError
    ├── SessionNotFound            a session id that no store knows
    ├── SessionAlreadyExists       creating a session whose id is taken
    ├── InvalidSessionOperation    bad input or an operation the session's state forbids
    ├── StorageError               a backend failed (path or URL and the operation named)
    ├── TokenLimitExceeded         a budget that cannot hold what must be sent
    └── ToolProcessingError        a tool call that could not be executed or parsed

Every class carries its inputs as attributes so callers can branch on data, not on
message text. Backend errors are translated at the store boundary and chained with
``from``; provider SDK errors are never wrapped: adapters re-raise them unchanged.
"""

from __future__ import annotations

__all__ = [
    "InvalidSessionOperation",
    "SessionAlreadyExists",
    "SessionNotFound",
    "SessionwareError",
    "StorageError",
    "TokenLimitExceeded",
    "ToolProcessingError",
]


class SessionwareError(Exception):
    """Base class of every error sessionware raises on purpose."""


class SessionNotFound(SessionwareError):
    """No session with this id exists in the store."""

    def __init__(self, session_id: str, *, store: str | None = None) -> None:
        self.session_id = session_id
        self.store = store
        where = f" in {store}" if store else ""
        super().__init__(f"session not found: {session_id!r}{where}")


class SessionAlreadyExists(SessionwareError):
    """A session was to be created under an id that is already taken."""

    def __init__(self, session_id: str, *, store: str | None = None) -> None:
        self.session_id = session_id
        self.store = store
        where = f" in {store}" if store else ""
        super().__init__(f"session already exists: {session_id!r}{where}")


class InvalidSessionOperation(SessionwareError):
    """The input or the session's state does not allow this operation."""

    def __init__(self, operation: str, reason: str, *, session_id: str | None = None) -> None:
        self.operation = operation
        self.reason = reason
        self.session_id = session_id
        on = f" on session {session_id!r}" if session_id else ""
        super().__init__(f"invalid operation {operation!r}{on}: {reason}")


class StorageError(SessionwareError):
    """A storage backend failed; ``location`` is the file path or URL involved."""

    def __init__(
        self,
        operation: str,
        backend: str,
        location: str,
        reason: str,
        *,
        retryable: bool = False,
        data_lost: bool = False,
    ) -> None:
        self.operation = operation
        self.backend = backend
        self.location = location
        self.reason = reason
        self.retryable = retryable
        """True when the same write may succeed later (locked file, server down)."""
        self.data_lost = data_lost
        """True when the store's data vanished under this process (a Redis restarted empty,
        or flushed): nothing of the write was applied, and what the process still holds
        must be written again first (the ``Store`` does that)."""
        super().__init__(f"{backend} storage error during {operation} at {location}: {reason}")


class TokenLimitExceeded(SessionwareError):
    """What must be sent (``required`` tokens) does not fit in ``limit`` tokens."""

    def __init__(self, limit: int, required: int, *, what: str = "context") -> None:
        self.limit = limit
        self.required = required
        self.what = what
        super().__init__(f"token limit exceeded: {what} needs {required} tokens, budget is {limit}")


class ToolProcessingError(SessionwareError):
    """A tool call could not be parsed or executed."""

    def __init__(self, tool_name: str, reason: str, *, call_id: str | None = None) -> None:
        self.tool_name = tool_name
        self.reason = reason
        self.call_id = call_id
        super().__init__(f"tool {tool_name!r} failed: {reason}")
