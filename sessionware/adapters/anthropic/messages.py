"""Reading Anthropic Messages requests and responses (``messages.*``, ``beta.messages.*``),
for ``Anthropic`` and ``AsyncAnthropic``.

Messages are recorded in the session's provider-neutral shape: an assistant turn's
``tool_use`` blocks become its tool calls (arguments as canonical JSON), and each
``tool_result`` block of a user turn becomes a tool-result message. Usage follows
``TokenUsage``'s convention: Anthropic reports cache reads and writes *beside*
``input_tokens``, so they are added into the input and kept as its subsets.

The SDK is not imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from time import perf_counter
from typing import Any

from sessionware.adapters.engine.messages import canonical_json, content_text, field, plain, to_int, usage_of
from sessionware.adapters.engine.types import (
    CallOutput,
    CallRequest,
    EndpointKind,
    StreamAccumulator,
    WireCall,
    WireMessage,
)
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.session.enums import Role

__all__ = ["MessagesAccumulator", "MessagesEndpoint", "anthropic_usage"]

_TOOL_USES = frozenset({"tool_use"})


def anthropic_usage(usage: Any) -> TokenUsage | None:
    """``TokenUsage`` from an Anthropic ``usage``, cache reads/writes folded into input."""
    if usage is None:
        return None
    read = to_int(field(usage, "cache_read_input_tokens"))
    write = to_int(field(usage, "cache_creation_input_tokens"))
    return usage_of(
        to_int(field(usage, "input_tokens")) + read + write,
        to_int(field(usage, "output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return canonical_json(value if value is not None else {})


def _assistant(content: Any) -> WireMessage:
    if not isinstance(content, list):
        return WireMessage(Role.ASSISTANT, content)
    kept: list[dict[str, Any]] = []
    calls: list[WireCall] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") in _TOOL_USES:
            calls.append(
                WireCall(
                    str(block.get("id") or ""), str(block.get("name") or ""), _arguments(block.get("input"))
                )
            )
        elif isinstance(block, dict):
            kept.append(dict(block))
    return WireMessage(Role.ASSISTANT, kept or None, tuple(calls))


def _user(content: Any, out: list[WireMessage]) -> None:
    if not isinstance(content, list):
        out.append(WireMessage(Role.USER, content))
        return
    rest: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            out.append(WireMessage(Role.TOOL, block.get("content"), call_id=block.get("tool_use_id")))
        else:
            rest.append(dict(block))
    if rest:
        out.append(WireMessage(Role.USER, rest))


def _read_messages(raw: list[Any]) -> Iterator[WireMessage]:
    """The conversation of a Messages request, one message at a time."""
    for given in raw:
        # Read before the SDK prepared it (managed mode), content may hold SDK objects.
        message = plain(given)
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            yield _assistant(message.get("content"))
        else:
            out: list[WireMessage] = []
            _user(message.get("content"), out)
            yield from out


class MessagesEndpoint:
    """``POST /v1/messages`` (also ``?beta=true``)."""

    kind = EndpointKind.MESSAGES

    def read_request(self, body: Mapping[str, Any]) -> CallRequest:
        # Read now: what threads the call into a session (``system`` and the first user
        # turn). The conversation is read when the call is recorded, off the app's path.
        system = body.get("system")
        raw = body.get("messages") or []
        if not isinstance(raw, list):
            raw = list(raw)
        first_user: Any = None
        for message in _read_messages(raw):
            if message.role is Role.USER:
                first_user = message.content
                break
        read: list[WireMessage] = []

        def build(start: int) -> list[WireMessage]:
            if not read:
                read.extend(_read_messages(raw))
            return read[start:]

        return CallRequest(
            model=body.get("model"),
            system=content_text(system) if system else None,
            build=build,
            first_user=first_user,
            tools=list(body.get("tools") or ()),
        )

    def read_response(self, response: Any) -> CallOutput:
        texts: list[str] = []
        calls: list[WireCall] = []
        for block in field(response, "content") or ():
            kind = field(block, "type")
            if kind == "text":
                texts.append(str(field(block, "text") or ""))
            elif kind in _TOOL_USES:
                calls.append(
                    WireCall(
                        str(field(block, "id") or ""),
                        str(field(block, "name") or ""),
                        _arguments(field(block, "input")),
                    )
                )
        text = "".join(texts) or None
        stop = field(response, "stop_reason")
        return CallOutput(
            text=text,
            calls=calls,
            refusal=(text or "") if stop == "refusal" else None,
            usage=anthropic_usage(field(response, "usage")),
            model=field(response, "model"),
            finish_reason=stop,
            response_id=field(response, "id"),
        )

    def accumulator(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> StreamAccumulator:
        return MessagesAccumulator()

    def with_stream_usage(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # message_start and message_delta always carry usage


class MessagesAccumulator:
    """Raw Messages stream events (what ``messages.create(stream=True)`` yields and
    ``messages.stream()`` is built on)."""

    __slots__ = ("blocks", "first_token_at", "model", "response_id", "stop", "stopped", "text", "usage")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.blocks: dict[int, list[Any]] = {}
        self.usage: dict[str, Any] = {}
        self.model: str | None = None
        self.response_id: str | None = None
        self.stop: str | None = None
        self.stopped = False
        self.first_token_at: float | None = None

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            delta = getattr(event, "delta", None)
            delta_kind = getattr(delta, "type", None)
            if self.first_token_at is None:
                self.first_token_at = perf_counter()
            if delta_kind == "text_delta":
                self.text.append(getattr(delta, "text", None) or "")
            elif delta_kind == "input_json_delta":
                slot = self.blocks.get(getattr(event, "index", None) or 0)
                if slot is not None:
                    slot[2].append(getattr(delta, "partial_json", None) or "")
        elif kind == "content_block_start":
            block = getattr(event, "content_block", None)
            if getattr(block, "type", None) in _TOOL_USES:
                index = getattr(event, "index", None) or 0
                self.blocks[index] = [getattr(block, "id", None), getattr(block, "name", None), []]
        elif kind == "message_start":
            message = getattr(event, "message", None)
            self.model = getattr(message, "model", None)
            self.response_id = getattr(message, "id", None)
            self._usage(getattr(message, "usage", None))
        elif kind == "message_delta":
            self.stop = getattr(getattr(event, "delta", None), "stop_reason", None) or self.stop
            self._usage(getattr(event, "usage", None))
        elif kind == "message_stop":
            self.stopped = True
        return False

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = getattr(usage, name, None)
            if value is not None:
                self.usage[name] = value

    def result(self) -> CallOutput:
        calls = []
        for _, (call_id, name, parts) in sorted(self.blocks.items()):
            raw = "".join(parts)
            try:
                arguments = canonical_json(json.loads(raw)) if raw else "{}"
            except ValueError:
                arguments = raw  # cut off mid-stream
            calls.append(WireCall(str(call_id or ""), str(name or ""), arguments))
        text = "".join(self.text) or None
        return CallOutput(
            text=text,
            calls=calls,
            refusal=(text or "") if self.stop == "refusal" else None,
            usage=anthropic_usage(self.usage) if self.usage else None,
            model=self.model,
            finish_reason=self.stop,
            response_id=self.response_id,
            complete=self.stopped,
        )
