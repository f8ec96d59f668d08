"""The one session-choice rule: which session a call records into.

Wrapped clients, instrumented ones and LiteLLM's callback all choose with ``choose``.
In this order:

1. a session named for the call: LiteLLM's per-call ``metadata={"session_id": ...}``,
   then the ``session_id`` of ``wrap()``, ``instrument()`` or ``SessionCallback``;
2. the innermost ``with sessionware.session(...)`` scope the call was made in;
3. the session of the response a Responses call continues (``previous_response_id``);
4. the conversation's fingerprint: its system text and first user message, so an app
   that re-sends its history records one session per conversation;
5. the caller's fallback session, for calls with nothing to thread on (embeddings).

A session created by the call starts with the request's system prompt and metadata:
the scope's, or ``{"auto": True}`` when the session was chosen automatically (3-5).
The scope's metadata is merged into an existing session when the call is recorded
(``merge_scope_metadata``).

>>> from sessionware.adapters.engine.types import CallRequest
>>> request = CallRequest(model="m", system="Be brief.", first_user="Hi")
>>> choose(request, named="support-42", scope=None, fallback="calls-1").session_id
'support-42'
>>> auto = choose(request, named=None, scope=None, fallback="calls-1")
>>> auto.auto, auto.session_id == choose(request, named=None, scope=None, fallback="x").session_id
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from sessionware.adapters.engine.messages import fingerprint
from sessionware.adapters.engine.types import CallRequest
from sessionware.adapters.scope import SessionScope
from sessionware.core.session.state import SessionState

__all__ = ["Choice", "choose", "merge_scope_metadata"]


class Choice(NamedTuple):
    """The session a call records into, and why."""

    session_id: str
    scope: SessionScope | None
    """The scope that chose it (its metadata goes on the session)."""
    auto: bool
    """Chosen automatically (no name, no scope): a new session is marked ``auto``."""

    def header(self, request: CallRequest) -> dict[str, Any]:
        """What a session created by this call starts with."""
        header: dict[str, Any] = {}
        if request.system is not None:
            header["system_prompt"] = request.system
        if self.scope is not None:
            header["metadata"] = dict(self.scope.handle.metadata)
        elif self.auto:
            header["metadata"] = {"auto": True}
        return header


def choose(
    request: CallRequest,
    *,
    named: str | None,
    scope: SessionScope | None,
    fallback: str,
    continued: Callable[[str], str | None] | None = None,
) -> Choice:
    """The session ``request`` records into (see the module docstring).

    ``continued(response_id)`` is the session of an earlier response, for calls that
    continue one (``request.continues``).
    """
    if named is not None:
        return Choice(named, None, auto=False)
    if scope is not None:
        return Choice(scope.id, scope, auto=False)
    if request.continues is not None and continued is not None:
        known = continued(request.continues)
        if known is not None:
            return Choice(known, None, auto=True)
    auto = fingerprint(request.system, request.first_user) if request.conversational else None
    return Choice(auto or fallback, None, auto=True)


def merge_scope_metadata(state: SessionState, scope: SessionScope | None) -> None:
    """Add the scope's metadata to the session's, where it differs."""
    wanted = scope.handle.metadata if scope is not None else None
    if wanted and any(state.info.metadata.get(k) != v for k, v in wanted.items()):
        state.save_header(metadata={**state.info.metadata, **wanted})
