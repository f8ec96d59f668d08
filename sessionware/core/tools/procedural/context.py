"""Procedural hints for a context the library builds (managed mode's memory block).

``session_hints(state, max_tokens, count)`` is the ``<procedural_memory>`` block of a
session's tool history cut to fit ``max_tokens``: every tool the session used, most
recent first, with fewer recent calls and error kinds per tool until it fits, then the
least recently used tools left out. "" when the session has no tool history, so a
context builder can ask every session and add nothing to most.
"""

from __future__ import annotations

from collections.abc import Callable

from sessionware.core.session.state import SessionState
from sessionware.core.tools.ledger import ledger_for

__all__ = ["has_tool_history", "session_hints"]

# (recent calls, error kinds) shown per tool, from the fullest to the barest.
_STEPS = ((3, 3), (2, 2), (1, 1), (0, 1), (0, 0))


def has_tool_history(state: SessionState) -> bool:
    """True once the session has a tool result (a ``TOOL_CALL`` event or the app's tool
    message). Read from the session's totals: asking costs nothing, and a session without
    tools never gets a ledger (which would fold every later event)."""
    return state.info.totals.tool_calls > 0


def session_hints(state: SessionState, max_tokens: int, count: Callable[[str], int]) -> str:
    """The session's hint block within ``max_tokens`` (as ``count`` counts text); "" if none."""
    if max_tokens <= 0:
        return ""
    ledger = ledger_for(state)
    with state.lock:
        memory = ledger.memory
        tools = memory.tools()
        while tools:
            for recent, errors in _STEPS:
                text = memory.format_hints(tools, max_recent=recent, max_errors=errors)
                if text and count(text) <= max_tokens:
                    return text
            tools = tools[:-1]  # the least recently used tool goes first
    return ""
