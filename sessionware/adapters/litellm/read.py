"""Reading one LiteLLM call from what its callbacks receive.

LiteLLM hands every ``CustomLogger`` event the same ``kwargs`` dict: the app's
OpenAI-format ``messages``, ``litellm_call_id``, ``litellm_params`` (with the per-call
``metadata``), ``optional_params`` (``tools``...), ``response_cost`` and, for streams,
the assembled ``complete_streaming_response``. Its responses are OpenAI-shaped
``ModelResponse`` objects, so the OpenAI chat reader reads both sides; only the usage
gets its own reader, because LiteLLM reports Anthropic's cache writes in fields
OpenAI does not have. Nothing here imports LiteLLM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any

from pydantic import BaseModel

from sessionware.adapters.anthropic.messages import MessagesEndpoint
from sessionware.adapters.engine.messages import to_int, usage_of
from sessionware.adapters.engine.types import CallOutput, CallRequest, EndpointKind, WireCall
from sessionware.adapters.openai.chat import ChatEndpoint
from sessionware.adapters.openai.responses import ResponsesEndpoint
from sessionware.core.accounting.usage import TokenUsage

__all__ = [
    "PROXY_CALL_TYPES",
    "RECORDED_CALL_TYPES",
    "LiteLLMCall",
    "is_chunk",
    "litellm_usage",
    "price_provider",
    "read_call",
    "read_output",
]

#: The LiteLLM call types the callback records (chat completions, sync and async).
RECORDED_CALL_TYPES = frozenset({"completion", "acompletion"})
#: What the proxy serves besides: the Responses API and Anthropic's ``/v1/messages``.
PROXY_CALL_TYPES = frozenset({"responses", "aresponses", "anthropic_messages"})

_CHAT = ChatEndpoint()
_RESPONSES = ResponsesEndpoint()
_MESSAGES = MessagesEndpoint()
_KINDS = {
    "responses": EndpointKind.RESPONSES,
    "aresponses": EndpointKind.RESPONSES,
    "anthropic_messages": EndpointKind.MESSAGES,
}

# LiteLLM provider names whose price-library provider id is spelt differently.
_PRICE_PROVIDERS = {
    "gemini": "google",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "azure_ai": "azure",
    "text-completion-openai": "openai",
}


def price_provider(litellm_provider: str | None) -> str | None:
    """The ``PriceBook`` provider id for a LiteLLM ``custom_llm_provider``."""
    if not litellm_provider:
        return None
    return _PRICE_PROVIDERS.get(litellm_provider, litellm_provider)


@dataclass(slots=True)
class LiteLLMCall:
    """One finished LiteLLM call, read from a callback's arguments."""

    call_id: str | None
    request: CallRequest
    provider: str
    stream: bool
    metadata: Mapping[str, Any]
    """The per-call ``metadata=`` the app passed."""
    litellm_session_id: str | None
    start: Any
    """LiteLLM's start, end and first-token times and its ``response_cost``, as it reported
    them (immutable values: converted when recorded, off the app's path)."""
    end: Any
    first_token: Any
    reported_cost: Any
    response: Any = None
    """The ``ModelResponse`` of a successful call (read by ``output()``, off the app's path)."""
    error: BaseException | None = None
    kind: EndpointKind = EndpointKind.CHAT

    def output(self) -> CallOutput | None:
        """What the model produced (None for a failed call)."""
        if self.response is None:
            return None
        if self.kind is EndpointKind.RESPONSES and _get(self.response, "object") == "response":
            return _RESPONSES.read_response(self.response)
        if self.kind is EndpointKind.MESSAGES and _get(self.response, "type") == "message":
            return _MESSAGES.read_response(self.response)
        return read_output(self.response)  # chat, and a stream LiteLLM assembled as chat

    @property
    def latency_ms(self) -> float:
        return _ms(self.start, self.end) or 0.0

    @property
    def ttft_ms(self) -> float | None:
        if not self.stream or self.first_token is None:
            return None
        return _ms(self.start, self.first_token)

    @property
    def response_cost(self) -> Decimal | None:
        """The cost LiteLLM computed, when it reported one."""
        return None if self.error is not None else _cost(self.reported_cost)


def _plain_message(message: Any) -> Any:
    """An app message as a dict (apps append LiteLLM's own ``Message`` objects back)."""
    if isinstance(message, dict):
        return message
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return message


def _request(kwargs: Mapping[str, Any], kind: EndpointKind) -> CallRequest:
    optional = kwargs.get("optional_params") or {}
    if not isinstance(optional, dict):
        optional = {}
    if kind is EndpointKind.RESPONSES:
        body = {k: optional[k] for k in ("instructions", "tools", "previous_response_id") if k in optional}
        # LiteLLM hands a streamed call its ``input``, a plain one only ``messages``.
        body.update(model=kwargs.get("model"), input=kwargs.get("input") or kwargs.get("messages") or [])
        return _RESPONSES.read_request(body)
    if kind is EndpointKind.MESSAGES:
        body = {k: optional[k] for k in ("system", "tools") if k in optional}
        body.update(model=kwargs.get("model"), messages=kwargs.get("messages") or [])
        return _MESSAGES.read_request(body)
    messages = kwargs.get("messages") or kwargs.get("input") or []
    if not isinstance(messages, list):
        messages = []
    elif not all(map(isinstance, messages, repeat(dict))):  # at C speed: every call, every message
        messages = [_plain_message(m) for m in messages]
    tools = optional.get("tools")
    return _CHAT.read_request({"model": kwargs.get("model"), "messages": messages, "tools": tools or []})


_ABSENT: Any = object()


def _get(obj: Any, name: str) -> Any:
    """``obj.name`` (None when absent), reading a pydantic model's fields directly.

    LiteLLM's response types answer a missing attribute through ``__getattr__`` in ~2 us;
    the few fields read per call add up to a measurable share of a mocked call.
    """
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    fields = getattr(obj, "__dict__", None)
    if fields is None:
        return getattr(obj, name, None)
    value = fields.get(name, _ABSENT)
    if value is not _ABSENT:
        return value
    if isinstance(obj, BaseModel):
        extra = obj.__pydantic_extra__
        return extra.get(name) if extra else None
    return getattr(obj, name, None)


def litellm_usage(usage: Any) -> TokenUsage | None:
    """``TokenUsage`` from a LiteLLM ``Usage`` (OpenAI's fields; Anthropic's cache writes
    are in ``prompt_tokens_details.cache_write_tokens``).

    LiteLLM's ``prompt_tokens`` already include cached reads and writes, which is what
    ``TokenUsage.input_tokens`` means too.
    """
    if usage is None:
        return None
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    cache_read = to_int(_get(prompt_details, "cached_tokens")) or to_int(
        _get(usage, "cache_read_input_tokens")
    )
    cache_write = to_int(_get(prompt_details, "cache_write_tokens")) or to_int(
        _get(usage, "cache_creation_input_tokens")
    )
    return usage_of(
        to_int(_get(usage, "prompt_tokens")),
        to_int(_get(usage, "completion_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=to_int(_get(completion_details, "reasoning_tokens")),
    )


def _cost(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def _ms(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max((end - start).total_seconds() * 1000.0, 0.0)
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max((end - start) * 1000.0, 0.0)
    return None


def is_chunk(response: Any) -> bool:
    """True for a single stream chunk (a success event fired before the stream ended)."""
    return bool(_get(response, "object") == "chat.completion.chunk")


def _calls(message: Any) -> list[WireCall]:
    calls: list[WireCall] = []
    for call in _get(message, "tool_calls") or ():
        function = _get(call, "function")
        calls.append(
            WireCall(
                str(_get(call, "id") or ""),
                str(_get(function, "name") or ""),
                str(_get(function, "arguments") or ""),
            )
        )
    legacy = _get(message, "function_call")
    if legacy:
        calls.append(WireCall("", str(_get(legacy, "name") or ""), str(_get(legacy, "arguments") or "")))
    return calls


def read_output(response: Any) -> CallOutput:
    """The answer of a ``ModelResponse`` (choice 0), read field by field."""
    choices = _get(response, "choices") or ()
    choice = choices[0] if choices else None
    message = _get(choice, "message")
    extra: dict[str, Any] = {"choices": len(choices)} if len(choices) > 1 else {}
    return CallOutput(
        text=_get(message, "content"),
        calls=_calls(message),
        refusal=_get(message, "refusal"),
        usage=litellm_usage(_get(response, "usage")),
        model=_get(response, "model"),
        finish_reason=_get(choice, "finish_reason"),
        response_id=_get(response, "id"),
        extra=extra,
    )


def read_call(
    kwargs: Mapping[str, Any], response: Any, start_time: Any, end_time: Any, *, failed: bool
) -> LiteLLMCall:
    """What one success or failure event says about its call."""
    params = kwargs.get("litellm_params") or {}
    metadata = params.get("metadata") if isinstance(params, dict) else None
    kind = _KINDS.get(str(kwargs.get("call_type")), EndpointKind.CHAT)
    call = LiteLLMCall(
        call_id=kwargs.get("litellm_call_id") or None,
        request=_request(kwargs, kind),
        kind=kind,
        provider=str(kwargs.get("custom_llm_provider") or params.get("custom_llm_provider") or "litellm"),
        stream=kwargs.get("stream") is True,
        metadata=metadata if isinstance(metadata, dict) else {},
        litellm_session_id=params.get("litellm_session_id") or None,
        start=start_time,
        end=end_time,
        first_token=kwargs.get("completion_start_time"),
        reported_cost=None if failed else kwargs.get("response_cost"),
    )
    if failed:
        error = kwargs.get("exception")
        call.error = error if isinstance(error, BaseException) else RuntimeError(str(error or response))
        return call
    final = kwargs.get("complete_streaming_response") or kwargs.get("async_complete_streaming_response")
    call.response = final if final is not None else response
    return call
