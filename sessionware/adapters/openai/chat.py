"""Reading OpenAI chat completions and embeddings (the Responses API: ``responses``;
which endpoint a request goes to: ``spec``).

Readers take whatever the SDK built (``ChatCompletion``, ``ChatCompletionChunk``...) or
parsed JSON (``AttrDict``) and read it by attribute with defaults, so chunks from
OpenAI-compatible servers with missing fields (``choices=None``, ``delta=None``, tool
call deltas without a function) are read, never raised on. The SDK is not imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from time import perf_counter
from typing import Any

from sessionware.adapters.engine.messages import content_text, field, message_key, plain
from sessionware.adapters.engine.resent import ResentHistory
from sessionware.adapters.engine.types import (
    CallOutput,
    CallRequest,
    EndpointKind,
    StreamAccumulator,
    WireCall,
    WireMessage,
)
from sessionware.adapters.openai.responses import openai_usage
from sessionware.core.session.enums import Role

__all__ = ["ChatAccumulator", "ChatEndpoint", "EmbeddingsEndpoint"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
# Roles whose string equals (and hashes as) their ``Role`` member.
_PLAIN_ROLES = frozenset({"user", "assistant"})


def _wire_calls(tool_calls: Any, function_call: Any = None) -> tuple[WireCall, ...]:
    calls: list[WireCall] = []
    for call in tool_calls or ():
        function = field(call, "function") or field(call, "custom")
        arguments = field(function, "arguments")
        if arguments is None:
            arguments = field(function, "input")
        calls.append(
            WireCall(str(field(call, "id") or ""), str(field(function, "name") or ""), str(arguments or ""))
        )
    if function_call:  # the legacy single `function_call`
        name, arguments = field(function_call, "name"), field(function_call, "arguments")
        calls.append(WireCall("", str(name or ""), str(arguments or "")))
    return tuple(calls)


_NO_CALLS: tuple[WireCall, ...] = ()
# WireMessage(...) through tuple.__new__: the named constructor's keyword handling
# costs more than the rest of reading a message, and every message is read every call.
_message = partial(tuple.__new__, WireMessage)


def _chat_message(message: Mapping[str, Any]) -> WireMessage | None:
    get = message.get
    role = get("role")
    content = get("content")
    if role == "user":
        return _message((Role.USER, content, _NO_CALLS, None, get("name")))
    if role == "assistant":
        if not content and get("refusal"):
            content = message["refusal"]
        tool_calls, function_call = get("tool_calls"), get("function_call")
        calls = _wire_calls(tool_calls, function_call) if tool_calls or function_call else _NO_CALLS
        return _message((Role.ASSISTANT, content, calls, None, get("name")))
    if role == "tool":
        return _message((Role.TOOL, content, _NO_CALLS, get("tool_call_id"), None))
    if role == "function":
        return _message((Role.TOOL, content, _NO_CALLS, None, get("name")))
    if role in _SYSTEM_ROLES:
        return _message((Role.SYSTEM, content, _NO_CALLS, None, None))
    return None


def _key_all(messages: list[Any]) -> tuple[list[int], list[dict[str, Any]]]:
    """The key of each chat message (``message_key``), and the messages that have one."""
    keys: list[int] = []
    kept: list[dict[str, Any]] = []
    for given in messages:
        # Read before the SDK prepared it (managed mode), a message may be an SDK object.
        message = given if given.__class__ is dict else plain(given)
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        role = message.get("role")
        if len(message) == 2 and content.__class__ is str and role in _PLAIN_ROLES:
            keys.append(hash((role, content, _NO_CALLS, "")))
        else:
            message = plain(message)
            wire = _chat_message(message)
            if wire is None:
                continue
            keys.append(message_key(wire))
        kept.append(message)
    return keys, kept


_RESENT = ResentHistory()


class _ChatRequest(CallRequest):
    """A chat request: what threads it into a session is read when the call is made (the
    leading system messages, the first user message); its conversation when it is recorded.

    Keys come straight from the dicts for the common plain-text turns; ``WireMessage``s
    are built later, and usually only for the few messages the session lacks.
    """

    __slots__ = ("_kept", "_raw", "_start")

    def __init__(self, body: Mapping[str, Any], raw: list[Any], start: int, system: str | None, first: Any):
        # The fields of CallRequest, set directly: this runs on the app's path, every call.
        self.model = body.get("model")
        self.system = system
        self.first_user = first
        self.tools = body.get("tools") or []
        self.continues = None
        self.conversational = True
        self.inputs = 0
        self._messages = None
        self._build = None
        self._keys = None
        self._raw = raw
        self._start = start
        self._kept: list[dict[str, Any]] | None = None

    @property
    def keys(self) -> list[int]:
        keys = self._keys
        return keys if isinstance(keys, list) else self._read()

    def _read(self) -> list[int]:
        # A history re-sent call after call is only keyed past what was keyed last time.
        keys, self._kept = _RESENT.keyed(self._raw[self._start :], _key_all)
        self._keys = keys
        return keys

    @property
    def messages(self) -> list[WireMessage]:
        if self._messages is None:
            self._messages = self._wire(0)
        return self._messages

    def messages_from(self, start: int) -> list[WireMessage]:
        return self._wire(start) if self._messages is None else self._messages[start:]

    def _wire(self, start: int) -> list[WireMessage]:
        if self._kept is None:
            self._read()
        assert self._kept is not None
        return [w for w in (_chat_message(plain(m)) for m in self._kept[start:]) if w is not None]


class ChatEndpoint:
    """``POST /chat/completions`` (``create``, ``parse``, ``stream()``)."""

    kind = EndpointKind.CHAT

    def read_request(self, body: Mapping[str, Any]) -> CallRequest:
        raw = body.get("messages") or []
        if not isinstance(raw, list):
            raw = list(raw)
        system: list[str] = []
        first_user: Any = None
        start = 0
        leading = True
        for i, given in enumerate(raw):
            message = plain(given)
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if leading:
                if role in _SYSTEM_ROLES:
                    content = message.get("content")
                    system.append(content if content.__class__ is str else content_text(content))
                    start = i + 1
                    continue
                leading = False
            if role == "user":
                first_user = message.get("content")
                break
        return _ChatRequest(body, raw, start, "\n\n".join(system) if system else None, first_user)

    def read_response(self, response: Any) -> CallOutput:
        choices = getattr(response, "choices", None) or ()
        choice = choices[0] if choices else None
        message = getattr(choice, "message", None)
        extra: dict[str, Any] = {}
        if len(choices) > 1:
            extra["choices"] = len(choices)
        tier = getattr(response, "service_tier", None)
        if tier:
            extra["service_tier"] = str(tier)
        return CallOutput(
            text=getattr(message, "content", None),
            calls=list(
                _wire_calls(getattr(message, "tool_calls", None), getattr(message, "function_call", None))
            ),
            refusal=getattr(message, "refusal", None),
            usage=openai_usage(getattr(response, "usage", None)),
            model=getattr(response, "model", None),
            finish_reason=getattr(choice, "finish_reason", None),
            response_id=getattr(response, "id", None),
            extra=extra,
        )

    def accumulator(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> StreamAccumulator:
        return ChatAccumulator(hide_usage_chunk=hide_usage_chunk, single_choice=single_choice)

    def with_stream_usage(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return None
        return {
            **body,
            "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True},
        }


class ChatAccumulator:
    """Chat completion chunks: choice 0's text, refusal and tool calls (by index)."""

    __slots__ = (
        "fast",
        "finish",
        "first_token_at",
        "hide_usage",
        "model",
        "refusal",
        "response_id",
        "single",
        "tail",
        "text",
        "tools",
        "usage",
    )

    def __init__(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> None:
        self.hide_usage = hide_usage_chunk
        self.single = single_choice
        """The request asked for one choice (no ``n`` > 1), so every choice is choice 0."""
        self.fast = False
        """Text chunks take the short path: the first token came, and ``single``."""
        self.tail: Any = None
        """The last chunk read on the short path; its finish reason is read at the end."""
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, list[Any]] = {}
        self.usage: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish: str | None = None
        self.first_token_at: float | None = None

    def add(self, chunk: Any) -> bool:
        # Once per chunk, on the app's iteration, where every read of a fresh chunk runs
        # cold (the SDK's work on the chunk comes between two of them): measured at about
        # 0.3-0.5 us an attribute inside a real stream. A text chunk after the first token
        # (nearly all of them) is read with the fewest plain attribute reads: one choice,
        # its delta's content and tool calls. Its index need not be read when the request
        # asked for one choice; a finish reason on such a chunk can only be on the last one,
        # which is kept and read when the stream ends. Anything else takes the general path.
        if self.fast:
            try:
                choices = chunk.choices
                if len(choices) == 1:
                    delta = choices[0].delta
                    content = delta.content
                    if content and not delta.tool_calls:
                        self.text.append(content)
                        self.tail = chunk
                        return False
            except (AttributeError, TypeError):
                pass
        return self._add(chunk)

    def _add(self, chunk: Any) -> bool:
        if self.model is None:
            self.model = getattr(chunk, "model", None)
            self.response_id = getattr(chunk, "id", None)
        choices = getattr(chunk, "choices", None)
        if not choices:
            usage = getattr(chunk, "usage", None)
            if usage is None:
                return False
            self.usage = usage
            # The usage-only chunk we asked for: the app did not, so it does not see it.
            return self.hide_usage
        choice = choices[0]
        if len(choices) > 1 or getattr(choice, "index", None):
            choice = next((c for c in choices if not getattr(c, "index", None)), None)
            if choice is None:
                return False
        delta = getattr(choice, "delta", None)
        if delta is not None:
            content = getattr(delta, "content", None)
            if content:
                self.text.append(content)
                if self.first_token_at is None:
                    self.first_token_at = perf_counter()
                    self.fast = self.single
            else:
                refusal = getattr(delta, "refusal", None)
                if refusal:
                    self.refusal.append(refusal)
            tool_calls = getattr(delta, "tool_calls", None)
            if tool_calls:
                self._add_tool_deltas(tool_calls)
        self._read_finish(choice, chunk)
        return False

    def _read_finish(self, choice: Any, chunk: Any) -> None:
        finish = getattr(choice, "finish_reason", None)
        if finish:
            self.finish = finish
            # Some servers put the usage on the last chunk that still has choices.
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                self.usage = usage

    def _add_tool_deltas(self, deltas: Any) -> None:
        if self.first_token_at is None:
            self.first_token_at = perf_counter()
        for delta in deltas:
            index = getattr(delta, "index", None) or 0
            slot = self.tools.get(index)
            if slot is None:
                slot = self.tools[index] = [None, None, []]
            call_id = getattr(delta, "id", None)
            if call_id:
                slot[0] = call_id
            function = getattr(delta, "function", None)
            if function is None:
                continue
            name = getattr(function, "name", None)
            if name:
                slot[1] = name
            arguments = getattr(function, "arguments", None)
            if arguments:
                slot[2].append(arguments)

    def result(self) -> CallOutput:
        tail, self.tail = self.tail, None
        if tail is not None and self.finish is None:
            self._read_finish(tail.choices[0], tail)
        calls = [
            WireCall(str(slot[0] or ""), str(slot[1] or ""), "".join(slot[2]))
            for _, slot in sorted(self.tools.items())
        ]
        return CallOutput(
            text="".join(self.text) or None,
            calls=calls,
            refusal="".join(self.refusal) or None,
            usage=openai_usage(self.usage),
            model=self.model,
            finish_reason=self.finish,
            response_id=self.response_id,
            complete=self.finish is not None,
        )


class _NoStream:
    first_token_at: float | None = None

    def add(self, chunk: Any) -> bool:
        return False

    def result(self) -> CallOutput:
        return CallOutput(complete=False)


class EmbeddingsEndpoint:
    """``POST /embeddings``: usage and cost only."""

    kind = EndpointKind.EMBEDDINGS

    def read_request(self, body: Mapping[str, Any]) -> CallRequest:
        data = body.get("input")
        inputs = 1 if isinstance(data, str) or not isinstance(data, list) else len(data)
        return CallRequest(
            model=body.get("model"), system=None, messages=[], conversational=False, inputs=inputs
        )

    def read_response(self, response: Any) -> CallOutput:
        return CallOutput(
            usage=openai_usage(getattr(response, "usage", None)), model=getattr(response, "model", None)
        )

    def accumulator(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> StreamAccumulator:
        return _NoStream()

    def with_stream_usage(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return None
