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
app gets the round without it: ``VisibleStream`` drops its chunks and renumbers the tool
calls after it; ``without_memory_calls`` does the same to a whole response, as a copy
(the SDK's object is never changed). Provider objects are read by attribute and copied
with pydantic's ``model_copy``, so the SDKs are not imported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from enum import Enum
from typing import Any

from sessionware.adapters.engine.streams import StreamOwner
from sessionware.adapters.engine.types import CallOutput, EndpointKind
from sessionware.core.memory.faults import is_vm_tool

__all__ = [
    "Capture",
    "Peek",
    "Verdict",
    "VisibleStream",
    "aplay",
    "araising",
    "anothing",
    "play",
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


# -- a round the app reads, with memory calls taken out -----------------------------------


class VisibleStream:
    """Per-chunk filter of a round the app reads: memory-call chunks are dropped.

    ``pass_chunk(chunk)`` returns the chunk to hand over (itself, or a renumbered copy),
    or None to drop it. Until a memory call shows up, every chunk passes unchanged after
    a few attribute reads.
    """

    __slots__ = ("app_calls", "dropped", "kind", "memory")

    def __init__(self, kind: EndpointKind) -> None:
        self.kind = kind
        self.memory: set[int] = set()
        """Indices (tool-call index, content block, output item) of memory calls."""
        self.app_calls = 0
        self.dropped = 0

    def _shift(self, index: int) -> int:
        return sum(1 for i in self.memory if i < index)

    def pass_chunk(self, chunk: Any) -> Any:
        if self.kind is EndpointKind.CHAT:
            return self._chat(chunk)
        if self.kind is EndpointKind.MESSAGES:
            return self._messages(chunk)
        return self._responses(chunk)

    def _chat(self, chunk: Any) -> Any:
        choices = getattr(chunk, "choices", None)
        if not choices:
            return chunk
        choice = choices[0]
        delta = getattr(choice, "delta", None)
        calls = getattr(delta, "tool_calls", None) if delta is not None else None
        finish = getattr(choice, "finish_reason", None)
        if not calls and finish != "tool_calls":
            return chunk
        kept = []
        changed = False
        for call in calls or ():
            index = getattr(call, "index", 0) or 0
            name = getattr(getattr(call, "function", None), "name", None)
            if name and is_vm_tool(name):
                self.memory.add(index)
            elif name:
                self.app_calls += 1
            if index in self.memory:
                changed = True
                continue
            shift = self._shift(index)
            changed = changed or bool(shift)
            kept.append(call.model_copy(update={"index": index - shift}) if shift else call)
        stop = finish == "tool_calls" and bool(self.memory) and not self.app_calls
        if not changed and not stop:
            return chunk
        update: dict[str, Any] = {}
        if changed and delta is not None:
            if (
                not kept
                and finish is None
                and not (getattr(delta, "content", None) or getattr(delta, "role", None))
            ):
                self.dropped += 1
                return None
            update["delta"] = delta.model_copy(update={"tool_calls": kept or None})
        if stop:
            update["finish_reason"] = "stop"
        return chunk.model_copy(update={"choices": [choice.model_copy(update=update), *choices[1:]]})

    def _messages(self, event: Any) -> Any:
        kind = getattr(event, "type", None)
        if kind == "content_block_start":
            block = getattr(event, "content_block", None)
            index = getattr(event, "index", 0) or 0
            if getattr(block, "type", None) == "tool_use":
                if is_vm_tool(str(getattr(block, "name", ""))):
                    self.memory.add(index)
                    self.dropped += 1
                    return None
                self.app_calls += 1
            return self._reindex(event, index)
        if kind in ("content_block_delta", "content_block_stop"):
            index = getattr(event, "index", 0) or 0
            if index in self.memory:
                self.dropped += 1
                return None
            return self._reindex(event, index)
        if kind == "message_delta" and self.memory and not self.app_calls:
            delta = getattr(event, "delta", None)
            if delta is not None and getattr(delta, "stop_reason", None) == "tool_use":
                return event.model_copy(
                    update={"delta": delta.model_copy(update={"stop_reason": "end_turn"})}
                )
        return event

    def _reindex(self, event: Any, index: int) -> Any:
        shift = self._shift(index) if self.memory else 0
        return event.model_copy(update={"index": index - shift}) if shift else event

    def _responses(self, event: Any) -> Any:
        kind = getattr(event, "type", None)
        index = getattr(event, "output_index", None)
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = getattr(event, "item", None)
            if getattr(item, "type", None) == "function_call":
                if is_vm_tool(str(getattr(item, "name", ""))):
                    self.memory.add(index or 0)
                elif kind == "response.output_item.added":
                    self.app_calls += 1
        if index is not None and self.memory:
            if index in self.memory:
                self.dropped += 1
                return None
            shift = self._shift(index)
            return event.model_copy(update={"output_index": index - shift}) if shift else event
        response = getattr(event, "response", None)
        if self.memory and response is not None and getattr(response, "output", None):
            return event.model_copy(update={"response": _responses_without(response)})
        return event


def play(buffered: list[Any], rest: Iterable[Any], visible: VisibleStream) -> Iterator[Any]:
    """What the app reads: the chunks read ahead, then the rest, memory calls taken out."""
    keep = visible.pass_chunk
    for chunk in buffered:
        shown = keep(chunk)
        if shown is not None:
            yield shown
    for chunk in rest:
        shown = keep(chunk)
        if shown is not None:
            yield shown


async def aplay(buffered: list[Any], rest: AsyncIterator[Any], visible: VisibleStream) -> AsyncIterator[Any]:
    keep = visible.pass_chunk
    for chunk in buffered:
        shown = keep(chunk)
        if shown is not None:
            yield shown
    async for chunk in rest:
        shown = keep(chunk)
        if shown is not None:
            yield shown


# -- whole responses ----------------------------------------------------------------------


def _responses_without(response: Any) -> Any:
    output = [
        item
        for item in getattr(response, "output", None) or ()
        if not (getattr(item, "type", None) == "function_call" and is_vm_tool(str(getattr(item, "name", ""))))
    ]
    return response.model_copy(update={"output": output})


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
        return _responses_without(response)
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
