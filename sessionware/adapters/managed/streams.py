"""Managed mode's view of responses: spotting memory calls in streams, and taking them out.

**Reading ahead.** A streamed round is read ahead by ``Peek`` before the app gets it:

* the first tool call is a memory call (``page_fault``/``search_pages``): the round is
  hidden (read to its end, served, re-sent; the app never sees it);
* the first tool call is one of the app's own: the round is read to its end first (a
  memory call may follow in the same message), then either hidden or handed over whole;
* text comes first: it is held back until ``holdback`` characters have arrived (a short
  preamble such as "Let me check my notes." is often followed by a memory call); past
  that the round is an answer and the app reads it live, from the first chunk on;
* the round ends: it is handed over whole.

**Taking memory calls out.** Should a memory call still reach a round the app reads (a
long text followed by a memory call, or a server that ignored ``tool_choice: none``), the
app gets the round without it: ``visible.VisibleStream`` drops its chunks and renumbers
the tool calls after it (or, past the read-ahead, the stream goes on with the next
round); ``without_memory_calls`` does the same to a whole response, as a copy
(the SDK's object is never changed). Provider objects are read by attribute and copied
with pydantic's ``model_copy``, so the SDKs are not imported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from enum import Enum
from typing import Any

from sessionware.adapters.engine.streams import StreamOwner
from sessionware.adapters.engine.types import CallOutput, EndpointKind
from sessionware.adapters.managed.visible import responses_without
from sessionware.core.memory.faults import is_vm_tool

__all__ = [
    "Capture",
    "Peek",
    "Verdict",
    "araising",
    "anothing",
    "raising",
    "without_memory_calls",
]


class Verdict(Enum):
    """What the chunks read so far say about a streamed round."""

    UNDECIDED = "undecided"
    MEMORY = "memory"
    """A memory call came first: the round is hidden."""
    TOOLS = "tools"
    """The app's tool call came first: read to the end, then decide."""
    LIVE = "live"
    """An answer: hand it over now."""


_UNDECIDED, _MEMORY, _TOOLS, _LIVE = Verdict.UNDECIDED, Verdict.MEMORY, Verdict.TOOLS, Verdict.LIVE


def _call_verdict(name: Any) -> Verdict:
    return _MEMORY if isinstance(name, str) and is_vm_tool(name) else _TOOLS


class Peek:
    """Classifies a streamed round's chunks as they are read ahead."""

    __slots__ = ("chars", "holdback", "kind")

    def __init__(self, kind: EndpointKind, holdback: int) -> None:
        self.kind = kind
        self.holdback = holdback
        self.chars = 0

    def feed(self, chunk: Any) -> Verdict:
        if self.kind is EndpointKind.CHAT:
            return self._chat(chunk)
        if self.kind is EndpointKind.MESSAGES:
            return self._messages(chunk)
        return self._responses(chunk)

    def _text(self, text: Any) -> Verdict:
        if text:
            self.chars += len(text)
            if self.chars > self.holdback:
                return _LIVE
        return _UNDECIDED

    def _chat(self, chunk: Any) -> Verdict:
        choices = getattr(chunk, "choices", None)
        if not choices:
            return _UNDECIDED
        delta = getattr(choices[0], "delta", None)
        if delta is None:
            return _UNDECIDED
        for call in getattr(delta, "tool_calls", None) or ():
            name = getattr(getattr(call, "function", None), "name", None)
            if name:
                return _call_verdict(name)
        return self._text(getattr(delta, "content", None) or getattr(delta, "refusal", None))

    def _messages(self, event: Any) -> Verdict:
        kind = getattr(event, "type", None)
        if kind == "content_block_start":
            block = getattr(event, "content_block", None)
            if getattr(block, "type", None) in ("tool_use", "server_tool_use"):
                return _call_verdict(getattr(block, "name", None))
        elif kind == "content_block_delta":
            delta = getattr(event, "delta", None)
            return self._text(getattr(delta, "text", None) or getattr(delta, "thinking", None))
        return _UNDECIDED

    def _responses(self, event: Any) -> Verdict:
        kind = getattr(event, "type", None)
        if kind == "response.output_item.added":
            item = getattr(event, "item", None)
            if getattr(item, "type", None) in ("function_call", "custom_tool_call"):
                return _call_verdict(getattr(item, "name", None))
        elif kind in (
            "response.output_text.delta",
            "response.refusal.delta",
            "response.reasoning_summary_text.delta",
        ):
            return self._text(getattr(event, "delta", None))
        return _UNDECIDED


# -- whole responses ----------------------------------------------------------------------


def without_memory_calls(kind: EndpointKind, response: Any) -> Any:
    """A copy of ``response`` without memory calls (``response`` itself when it has none)."""
    if kind is EndpointKind.CHAT:
        choices = getattr(response, "choices", None) or []
        if not choices:
            return response
        choice = choices[0]
        message = choice.message
        calls = message.tool_calls or []
        kept = [c for c in calls if not is_vm_tool(str(getattr(getattr(c, "function", None), "name", "")))]
        if len(kept) == len(calls):
            return response
        update: dict[str, Any] = {"message": message.model_copy(update={"tool_calls": kept or None})}
        if not kept and choice.finish_reason == "tool_calls":
            update["finish_reason"] = "stop"
        return response.model_copy(update={"choices": [choice.model_copy(update=update), *choices[1:]]})
    if kind is EndpointKind.MESSAGES:
        content = list(getattr(response, "content", None) or ())
        kept_blocks = [
            b
            for b in content
            if not (getattr(b, "type", None) == "tool_use" and is_vm_tool(str(getattr(b, "name", ""))))
        ]
        if len(kept_blocks) == len(content):
            return response
        updates: dict[str, Any] = {"content": kept_blocks}
        if response.stop_reason == "tool_use" and not any(
            getattr(b, "type", None) == "tool_use" for b in kept_blocks
        ):
            updates["stop_reason"] = "end_turn"
        return response.model_copy(update=updates)
    if kind is EndpointKind.RESPONSES:
        return responses_without(response)
    return response


# -- reading ahead --------------------------------------------------------------------------


class Capture(StreamOwner):
    """Owner of a streamed round being read ahead: keeps how it ended."""

    __slots__ = ("end", "error", "first_token_at", "output")

    def __init__(self) -> None:
        self.output: CallOutput | None = None
        self.error: BaseException | None = None
        self.end: str | None = None
        self.first_token_at: float | None = None

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None:
        self.output, self.error, self.end, self.first_token_at = output, error, end, first_token_at


def raising(error: BaseException) -> Iterator[Any]:
    """A rest of a stream that raises ``error`` where the provider's stream broke off."""
    yield from ()
    raise error


async def anothing() -> AsyncIterator[Any]:
    """The rest of a stream already read to its end."""
    empty: tuple[Any, ...] = ()
    for item in empty:
        yield item


async def araising(error: BaseException) -> AsyncIterator[Any]:
    async for item in anothing():
        yield item
    raise error
