"""Reading the OpenAI Responses API (``responses.create/parse/stream()``).

Input items map onto the conversation: role messages as they are, an assistant message
and the ``function_call`` items after it as one assistant turn (that is how the output
of one response is recorded), ``function_call_output`` items as tool results; reasoning
and built-in tool items carry no conversation text and are skipped. A request with
``previous_response_id`` (or a ``conversation``) continues state kept by OpenAI, so all
of its input is new.
"""

from __future__ import annotations

from collections.abc import Mapping
from time import perf_counter
from typing import Any

from sessionware.adapters.engine.messages import content_text, field, plain, to_int, usage_of
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

__all__ = ["ResponsesAccumulator", "ResponsesEndpoint", "openai_usage"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
_SKIPPED_ITEMS = frozenset({"reasoning", "item_reference"})
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_START_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})


def openai_usage(usage: Any) -> TokenUsage | None:
    """``TokenUsage`` from an OpenAI ``usage`` of any endpoint (cached/reasoning kept)."""
    if usage is None:
        return None
    # SDK objects and ``AttrDict`` payloads both read by attribute (None when absent).
    prompt = getattr(usage, "prompt_tokens", None)
    if prompt is None:
        prompt = getattr(usage, "input_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if completion is None:
        completion = getattr(usage, "output_tokens", None)
    prompt_details = getattr(usage, "prompt_tokens_details", None) or getattr(
        usage, "input_tokens_details", None
    )
    completion_details = getattr(usage, "completion_tokens_details", None) or getattr(
        usage, "output_tokens_details", None
    )
    return usage_of(
        to_int(prompt),
        to_int(completion),
        cache_read_tokens=to_int(getattr(prompt_details, "cached_tokens", None)),
        reasoning_tokens=to_int(getattr(completion_details, "reasoning_tokens", None)),
    )


def _assistant_text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    refusals: list[str] = []
    for part in content:
        kind = field(part, "type")
        if kind == "refusal":
            refusals.append(str(field(part, "refusal") or ""))
        elif kind in ("output_text", "text", "input_text"):
            texts.append(str(field(part, "text") or ""))
    return "".join(texts) or "".join(refusals)


class _Turns:
    """Builds the message list, merging an assistant message with its function calls."""

    def __init__(self) -> None:
        self.messages: list[WireMessage] = []
        self.system: list[str] = []
        self._text: list[str] = []
        self._calls: list[WireCall] = []
        self._open = False

    def flush(self) -> None:
        if self._open:
            text = "".join(self._text)
            self.messages.append(WireMessage(Role.ASSISTANT, text or None, tuple(self._calls)))
            self._text, self._calls, self._open = [], [], False

    def assistant(self, text: str = "", call: WireCall | None = None) -> None:
        if text and self._calls:
            self.flush()  # text after calls starts a new turn
        self._open = True
        if text:
            self._text.append(text)
        if call is not None:
            self._calls.append(call)

    def add(self, message: WireMessage) -> None:
        self.flush()
        self.messages.append(message)

    def item(self, item: Mapping[str, Any]) -> None:
        kind = item.get("type")
        role = item.get("role")
        if kind in _SKIPPED_ITEMS:
            return
        if kind == "function_call":
            self.assistant(
                call=WireCall(
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
            )
        elif kind == "custom_tool_call":
            self.assistant(
                call=WireCall(
                    str(item.get("call_id") or ""), str(item.get("name") or ""), str(item.get("input") or "")
                )
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self.add(WireMessage(Role.TOOL, item.get("output"), call_id=item.get("call_id")))
        elif role in _SYSTEM_ROLES:
            if not self.messages and not self._open:
                self.system.append(content_text(item.get("content")))
            else:
                self.add(WireMessage(Role.SYSTEM, item.get("content")))
        elif role == "assistant":
            self.assistant(_assistant_text(item.get("content")))
        elif role == "user":
            self.add(WireMessage(Role.USER, item.get("content")))
        else:
            self.flush()


def _read(body: Mapping[str, Any], *, until_user: bool) -> _Turns:
    """The input's turns: all of them, or up to the first user message (leading system
    text included, which is all that threading a call needs)."""
    turns = _Turns()
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        turns.system.append(instructions)
    data = body.get("input")
    if isinstance(data, str):
        turns.add(WireMessage(Role.USER, data))
    else:
        for given in data or ():
            # Read before the SDK prepared it (managed mode), an item may be an SDK object.
            item = plain(given)
            if isinstance(item, dict):
                turns.item(item)
                if until_user and turns.messages and turns.messages[-1].role is Role.USER:
                    break
    turns.flush()
    return turns


def _continues(body: Mapping[str, Any]) -> str | None:
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        return previous
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    return conversation if isinstance(conversation, str) and conversation else None


class ResponsesEndpoint:
    """``POST /responses``."""

    kind = EndpointKind.RESPONSES

    def read_request(self, body: Mapping[str, Any]) -> CallRequest:
        # Read now: what threads the call into a session, from the input up to its first
        # user message. The whole input is read when the call is recorded, off the app's path.
        opening = _read(body, until_user=True)
        first_user = next((m.content for m in opening.messages if m.role is Role.USER), None)
        read: list[WireMessage] = []

        def build(start: int) -> list[WireMessage]:
            if not read:
                read.extend(_read(body, until_user=False).messages)
            return read[start:]

        return CallRequest(
            model=body.get("model"),
            system="\n\n".join(opening.system) if opening.system else None,
            build=build,
            first_user=first_user,
            continues=_continues(body),
            tools=list(body.get("tools") or ()),
        )

    def read_response(self, response: Any) -> CallOutput:
        texts: list[str] = []
        refusals: list[str] = []
        calls: list[WireCall] = []
        for item in field(response, "output") or ():
            kind = field(item, "type")
            if kind == "message":
                for part in field(item, "content") or ():
                    part_kind = field(part, "type")
                    if part_kind == "output_text":
                        texts.append(str(field(part, "text") or ""))
                    elif part_kind == "refusal":
                        refusals.append(str(field(part, "refusal") or ""))
            elif kind in ("function_call", "custom_tool_call"):
                arguments = field(item, "arguments") if kind == "function_call" else field(item, "input")
                calls.append(
                    WireCall(
                        str(field(item, "call_id") or ""),
                        str(field(item, "name") or ""),
                        str(arguments or ""),
                    )
                )
        status = field(response, "status")
        reason = field(field(response, "incomplete_details"), "reason")
        extra: dict[str, Any] = {}
        error = field(response, "error")
        if error is not None:
            extra["provider_error"] = str(field(error, "message") or error)
        return CallOutput(
            text="".join(texts) or None,
            calls=calls,
            refusal="".join(refusals) or None,
            usage=openai_usage(field(response, "usage")),
            model=field(response, "model"),
            finish_reason=str(reason or status) if (reason or status) else None,
            response_id=field(response, "id"),
            complete=status not in ("in_progress", "queued"),
            extra=extra,
        )

    def accumulator(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> StreamAccumulator:
        return ResponsesAccumulator(self)

    def with_stream_usage(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # the final event always carries the usage


class ResponsesAccumulator:
    """Responses stream events; the final ``response.*`` event carries the whole response."""

    __slots__ = (
        "calls",
        "endpoint",
        "error",
        "final",
        "first_token_at",
        "model",
        "refusal",
        "response_id",
        "text",
    )

    def __init__(self, endpoint: ResponsesEndpoint) -> None:
        self.endpoint = endpoint
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, list[Any]] = {}
        self.final: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.error: str | None = None
        self.first_token_at: float | None = None

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            self.text.append(getattr(event, "delta", None) or "")
            if self.first_token_at is None:
                self.first_token_at = perf_counter()
        elif kind == "response.function_call_arguments.delta":
            slot = self.calls.get(getattr(event, "output_index", None) or 0)
            if slot is not None:
                slot[2].append(getattr(event, "delta", None) or "")
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._item(event)
        elif kind == "response.refusal.delta":
            self.refusal.append(getattr(event, "delta", None) or "")
        elif kind in _FINAL_EVENTS:
            self.final = getattr(event, "response", None)
        elif kind in _START_EVENTS:
            response = getattr(event, "response", None)
            self.model = getattr(response, "model", None) or self.model
            self.response_id = getattr(response, "id", None) or self.response_id
        elif kind == "error":
            self.error = str(getattr(event, "message", None) or "stream error")
        return False

    def _item(self, event: Any) -> None:
        item = getattr(event, "item", None)
        if getattr(item, "type", None) != "function_call":
            return
        if self.first_token_at is None:
            self.first_token_at = perf_counter()
        index = getattr(event, "output_index", None) or 0
        arguments = getattr(item, "arguments", None)
        slot = self.calls.get(index)
        if slot is None:
            slot = self.calls[index] = [getattr(item, "call_id", None), getattr(item, "name", None), []]
        if event.type == "response.output_item.done" and arguments:
            slot[2] = [arguments]

    def result(self) -> CallOutput:
        if self.final is not None:
            output = self.endpoint.read_response(self.final)
        else:
            output = CallOutput(
                text="".join(self.text) or None,
                calls=[
                    WireCall(str(s[0] or ""), str(s[1] or ""), "".join(s[2]))
                    for _, s in sorted(self.calls.items())
                ],
                refusal="".join(self.refusal) or None,
                model=self.model,
                response_id=self.response_id,
                complete=False,
            )
        if self.error is not None:
            output.extra["provider_error"] = self.error
        return output
