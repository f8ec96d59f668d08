"""Session logging of a tool round: the assistant message that asked (once) and one
``TOOL_CALL`` event per result, linked by the provider's call id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import EventDraft
from sessionware.core.session.state import SessionState
from sessionware.core.tools.models import ToolResult
from sessionware.core.tools.parsing import AssistantTurn
from sessionware.core.tools.records import event_metadata

__all__ = ["ensure_assistant_message", "logged_by_runner", "runner_is_logging", "result_drafts"]

Draft = EventDraft

# How far back to look for the assistant message of a round: it is normally the last
# event, a few more when a wrapped client recorded usage, results or hidden rounds after it.
_LOOKBACK = 64


_runner_logging: ContextVar[bool] = ContextVar("sessionware_runner_logging", default=False)


@contextmanager
def logged_by_runner() -> Iterator[None]:
    """While a ``ToolRunner`` executes calls it logs itself: a wrapped ``ToolProcessor`` it
    runs them through (``ToolRunner(processor=...)``) must not log them a second time.
    Tasks started inside inherit it."""
    token = _runner_logging.set(True)
    try:
        yield
    finally:
        _runner_logging.reset(token)


def runner_is_logging() -> bool:
    """True inside ``logged_by_runner``."""
    return _runner_logging.get()


def _announced(state: SessionState, call_ids: set[str]) -> bool:
    """Whether the latest assistant message that asked for tools asked for these."""
    for event in reversed(state.events[-_LOOKBACK:]):
        if event.tool_calls and event.role is Role.ASSISTANT:
            return any(c.id in call_ids for c in event.tool_calls)
    return False


def ensure_assistant_message(
    state: SessionState, turn: AssistantTurn, *, recorded_by: str = "tool_runner"
) -> bool:
    """Record the assistant message carrying ``turn``'s calls unless the session has it
    (recorded by ``ai_responds`` or a wrapped client). Returns True when it recorded one.

    It is recorded without usage or cost: whoever made the provider call accounts for it.
    Call with ``state.lock`` held so two rounds cannot both record it.
    """
    ids = {call.id for call in turn.calls}
    if not ids or _announced(state, ids):
        return False
    state.record(
        EventType.MESSAGE,
        EventSource.LLM,
        role=Role.ASSISTANT,
        content=turn.text,
        tool_calls=turn.tool_calls(),
        metadata={"recorded_by": recorded_by},
    )
    return True


def result_drafts(results: Iterable[ToolResult]) -> list[Draft]:
    """``TOOL_CALL`` events for ``results``, in order (what ``record_many`` takes)."""
    return [
        (
            EventType.TOOL_CALL,
            EventSource.TOOL,
            {
                "role": Role.TOOL,
                "tool_name": r.tool,
                "tool_arguments": r.arguments,
                "tool_result": r.result,
                "error": r.error,
                "tool_call_id": r.call_id,
                "latency_ms": r.latency_ms,
                "metadata": event_metadata(r),
            },
        )
        for r in results
    ]
