"""What the app reads of a streamed round: memory calls taken out, later rounds joined on.

``VisibleStream.pass_chunk(chunk)`` returns the chunk to hand over (itself, or a changed
copy made with pydantic's ``model_copy``), or None to drop it. Until a memory call shows
up, every chunk passes unchanged after a few attribute reads.

**One round.** A memory call's chunks are dropped and the tool calls, content blocks or
output items after it renumbered; when it was the round's only call, the finish reason
says the model stopped (``stop`` / ``end_turn``), as it does when the round is final.

**A round continued** (``continuable``): a memory call that comes after the app already
read text (past the read-ahead, see ``streams.Peek``) is served, and the stream goes on
with the model's next round (``hooks``). From that memory call on, the round's app calls
(left out of the follow-up, the model asks again if it wants them), its finish and its
usage are dropped: the app reads one message. The next round's ``VisibleStream`` is made
``after`` this one: its start (``message_start``, ``response.created``, the role of the
first chat delta) is dropped, its content blocks / output items are numbered after the
ones the app already has, and its final Responses event carries the items of every
round. An app call shown before the memory call keeps the round as it is (the app must
be able to answer what it was shown); the memory call is then served for later rounds
of the turn only.
"""

from __future__ import annotations

from typing import Any

from sessionware.adapters.engine.types import EndpointKind
from sessionware.core.memory.faults import is_vm_tool

__all__ = ["VisibleStream", "responses_without"]

_START_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _name(obj: Any) -> str:
    return str(getattr(obj, "name", "") or "")


def responses_without(response: Any) -> Any:
    """A Responses ``response`` without its memory calls (a copy)."""
    output = [
        item
        for item in getattr(response, "output", None) or ()
        if not (getattr(item, "type", None) == "function_call" and is_vm_tool(_name(item)))
    ]
    return response.model_copy(update={"output": output})


class VisibleStream:
    """Per-chunk filter of a round the app reads (see the module docstring)."""

    __slots__ = (
        "after",
        "app_calls",
        "continuable",
        "continuing",
        "dropped",
        "items",
        "kind",
        "left_out",
        "memory",
        "offset",
        "role_dropped",
        "sequence",
        "shown",
        "start_usage",
    )

    def __init__(
        self, kind: EndpointKind, *, continuable: bool = False, after: VisibleStream | None = None
    ) -> None:
        self.kind = kind
        self.continuable = continuable
        self.after = after
        self.memory: set[int] = set()
        """Indices (tool-call index, content block, output item) of memory calls."""
        self.left_out: set[int] = set()
        """Indices of app calls dropped after a memory call of a continued round."""
        self.app_calls = 0
        self.dropped = 0
        self.continuing = False
        """A memory call came before any app call shown: the round goes on (next round)."""
        self.offset: int = after.shown if after is not None else 0
        """Content blocks / output items the app has from earlier rounds."""
        self.shown: int = self.offset
        self.items: list[Any] = list(after.items) if after is not None else []
        """Responses output items the app was shown, done (earlier rounds' first)."""
        self.sequence: int = after.sequence if after is not None else -1
        """The last Responses ``sequence_number`` handed over."""
        self.role_dropped = after is None
        self.start_usage: Any = None

    def _gone(self, index: int) -> bool:
        return index in self.memory or index in self.left_out

    def _shift(self, index: int) -> int:
        return sum(1 for i in self.memory if i < index) + sum(1 for i in self.left_out if i < index)

    def _call(self, index: int, name: str) -> None:
        """A call started at ``index``: note where it goes."""
        if is_vm_tool(name):
            self.memory.add(index)
            if self.continuable and not self.app_calls:
                self.continuing = True
        elif self.continuing:
            self.left_out.add(index)
        else:
            self.app_calls += 1

    def pass_chunk(self, chunk: Any) -> Any:
        if self.kind is EndpointKind.CHAT:
            return self._chat(chunk)
        if self.kind is EndpointKind.MESSAGES:
            return self._messages(chunk)
        return self._responses(chunk)

    # -- chat completions ---------------------------------------------------------------------

    def _chat(self, chunk: Any) -> Any:
        choices = getattr(chunk, "choices", None)
        if not choices:
            if self.continuing:  # the round's usage: the last round's is the app's
                self.dropped += 1
                return None
            return chunk
        choice = choices[0]
        delta = getattr(choice, "delta", None)
        calls = getattr(delta, "tool_calls", None) if delta is not None else None
        finish = getattr(choice, "finish_reason", None)
        role = getattr(delta, "role", None) if not self.role_dropped else None
        if not calls and finish is None and role is None:
            return chunk
        kept = []
        changed = False
        for call in calls or ():
            index = getattr(call, "index", 0) or 0
            name = _name(getattr(call, "function", None))
            if name:
                self._call(index, name)
            if self._gone(index):
                changed = True
                continue
            shift = self._shift(index)
            changed = changed or bool(shift)
            kept.append(call.model_copy(update={"index": index - shift}) if shift else call)
        update: dict[str, Any] = {}
        delta_update: dict[str, Any] = {}
        if changed:
            delta_update["tool_calls"] = kept or None
        if role is not None:
            self.role_dropped = True
            delta_update["role"] = None
        if self.continuing and finish is not None:
            update["finish_reason"] = None
            if getattr(chunk, "usage", None) is not None:
                chunk = chunk.model_copy(update={"usage": None})
        elif finish == "tool_calls" and self.memory and not self.app_calls:
            update["finish_reason"] = "stop"
        if not update and not delta_update:
            return chunk
        if delta_update and delta is not None:
            if (
                not kept
                and update.get("finish_reason", finish) is None
                and not getattr(delta, "content", None)
                and delta_update.get("role", getattr(delta, "role", None)) is None
            ):
                self.dropped += 1
                return None
            update["delta"] = delta.model_copy(update=delta_update)
        elif self.continuing and delta is not None and not getattr(delta, "content", None) and not kept:
            self.dropped += 1  # the finish of a round that goes on
            return None
        return chunk.model_copy(update={"choices": [choice.model_copy(update=update), *choices[1:]]})

    # -- Anthropic Messages ------------------------------------------------------------------

    def _messages(self, event: Any) -> Any:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            if self.after is not None:
                self.start_usage = getattr(getattr(event, "message", None), "usage", None)
                self.dropped += 1
                return None
            return event
        if kind == "content_block_start":
            block = getattr(event, "content_block", None)
            index = getattr(event, "index", 0) or 0
            if getattr(block, "type", None) == "tool_use":
                self._call(index, _name(block))
            if self._gone(index):
                self.dropped += 1
                return None
            self.shown += 1
            return self._reindex(event, index)
        if kind in ("content_block_delta", "content_block_stop"):
            index = getattr(event, "index", 0) or 0
            if self._gone(index):
                self.dropped += 1
                return None
            return self._reindex(event, index)
        if kind in ("message_delta", "message_stop") and self.continuing:
            self.dropped += 1
            return None
        if kind == "message_delta":
            return self._final_delta(event)
        return event

    def _final_delta(self, event: Any) -> Any:
        delta = getattr(event, "delta", None)
        update: dict[str, Any] = {}
        if delta is not None and self.memory and not self.app_calls and delta.stop_reason == "tool_use":
            update["delta"] = delta.model_copy(update={"stop_reason": "end_turn"})
        usage, start = getattr(event, "usage", None), self.start_usage
        if usage is not None and start is not None:
            # The app's one usage is the last round's: its input too, not the first round's.
            fill = {
                name: getattr(start, name, None)
                for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
                if getattr(usage, name, None) is None and getattr(start, name, None) is not None
            }
            if fill:
                update["usage"] = usage.model_copy(update=fill)
        return event.model_copy(update=update) if update else event

    def _reindex(self, event: Any, index: int) -> Any:
        moved = index - self._shift(index) + self.offset
        return event.model_copy(update={"index": moved}) if moved != index else event

    # -- OpenAI Responses --------------------------------------------------------------------

    def _responses(self, event: Any) -> Any:
        kind = getattr(event, "type", None)
        if self.after is not None and kind in _START_EVENTS:
            self.dropped += 1
            return None
        index = getattr(event, "output_index", None)
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = getattr(event, "item", None)
            if kind == "response.output_item.added" and getattr(item, "type", None) in (
                "function_call",
                "custom_tool_call",
            ):
                self._call(index or 0, _name(item))
            if index is not None and not self._gone(index):
                if kind == "response.output_item.added":
                    self.shown += 1
                elif item is not None:
                    self.items.append(item)
        if kind in _FINAL_EVENTS:
            if self.continuing:
                self.dropped += 1
                return None
            return self._numbered(self._final(event))
        if index is not None:
            if self._gone(index):
                self.dropped += 1
                return None
            moved = index - self._shift(index) + self.offset
            if moved != index:
                event = event.model_copy(update={"output_index": moved})
        return self._numbered(event)

    def _final(self, event: Any) -> Any:
        response = getattr(event, "response", None)
        if response is None or not (self.memory or self.left_out or self.after is not None):
            return event
        if self.after is None:
            return event.model_copy(update={"response": responses_without(response)})
        # Every round's items, as the app was shown them.
        return event.model_copy(update={"response": response.model_copy(update={"output": list(self.items)})})

    def _numbered(self, event: Any) -> Any:
        number = getattr(event, "sequence_number", None)
        if not isinstance(number, int):
            return event
        if self.after is None:
            self.sequence = number
            return event
        self.sequence += 1
        return event.model_copy(update={"sequence_number": self.sequence})
