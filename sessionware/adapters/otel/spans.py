"""OpenTelemetry spans of recorded calls, after the GenAI semantic conventions.

Conventions followed: OpenTelemetry semantic conventions ``SEMCONV_VERSION`` (GenAI
spans, which the conventions mark as in development), with the memory operations of the
GenAI memory proposal (``search_memory``). One ``CLIENT`` span per LLM call, named
``"{operation} {model}"``; a managed call's hidden rounds are child spans of it, and the
memory calls served in them (``page_fault``, ``search_pages``) are ``search_memory``
spans under the round that asked for them.

Spans are made from recorded events, on the thread that records (sessionware's recorder
thread, off the app's path), with the call's own start and end times: nothing of this
runs while the app waits, and a stream's span ends when its record does (read to the end,
closed, or abandoned). Only ``opentelemetry-api`` is used: spans go to whatever tracer
provider the app configured (none: the API's no-op, and nothing is built).

Attributes (values as the provider reported them; cost is sessionware's):

* ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.response.finish_reasons``;
* ``gen_ai.conversation.id``: the session id;
* ``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.usage.cache_read.input_tokens``,
  ``gen_ai.usage.cache_creation.input_tokens``, ``gen_ai.usage.reasoning.output_tokens``;
* ``gen_ai.response.time_to_first_chunk`` (seconds, streams);
* ``error.type`` and an error status for failed calls;
* ``sessionware.cost.usd``, ``sessionware.cache.saved.usd``, ``sessionware.app_input_tokens``
  (managed calls: what the app asked to send), ``sessionware.hidden``,
  ``sessionware.stream.end`` (how an unfinished stream ended);
* with ``capture_content``: ``gen_ai.input.messages``, ``gen_ai.output.messages`` and
  ``gen_ai.system_instructions`` as JSON (off by default: prompts often hold personal data).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sessionware.core.accounting.caching import cache_saving
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.session.enums import EventType
from sessionware.core.session.models import SessionEvent

__all__ = ["SCHEMA_URL", "SEMCONV_VERSION", "call_attributes", "memory_attributes", "operation_of"]

SEMCONV_VERSION = "1.37.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

_OPERATIONS = {
    "chat.completions": "chat",
    "responses": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}


def operation_of(event: SessionEvent) -> str:
    """The GenAI operation of a recorded call (``chat`` unless its endpoint says otherwise)."""
    endpoint = event.metadata.get("endpoint")
    return _OPERATIONS.get(str(endpoint), "chat") if endpoint else "chat"


def _content(event: SessionEvent) -> Any:
    if event.type is EventType.TOOL_CALL:
        return {"type": "tool_call_response", "id": event.tool_call_id, "response": event.tool_result}
    parts: list[dict[str, Any]] = []
    if isinstance(event.content, str) and event.content:
        parts.append({"type": "text", "content": event.content})
    elif isinstance(event.content, list):
        parts.extend(
            {"type": "text", "content": str(p["text"])}
            if "text" in p
            else {"type": str(p.get("type", "part"))}
            for p in event.content
        )
    if event.tool_call_id:
        parts = [{"type": "tool_call_response", "id": event.tool_call_id, "response": event.text}]
    parts.extend(
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in event.tool_calls
    )
    return parts


def _messages(events: Iterable[SessionEvent]) -> str:
    return json.dumps(
        [{"role": e.role.value if e.role else "user", "parts": _content(e)} for e in events],
        ensure_ascii=False,
        default=str,
    )


def call_attributes(
    event: SessionEvent,
    session_id: str,
    prices: PriceBook,
    *,
    requested_model: str | None = None,
    inputs: Sequence[SessionEvent] = (),
    system: Any = None,
    capture_content: bool = False,
) -> dict[str, Any]:
    """The span attributes of one recorded call (``event``: its final or hidden event)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation_of(event),
        "gen_ai.conversation.id": session_id,
    }
    if event.provider:
        attrs["gen_ai.provider.name"] = event.provider
    model = requested_model or event.model
    if model:
        attrs["gen_ai.request.model"] = model
    if event.model:
        attrs["gen_ai.response.model"] = event.model
    response_id = event.metadata.get("response_id")
    if response_id:
        attrs["gen_ai.response.id"] = str(response_id)
    if event.finish_reason:
        attrs["gen_ai.response.finish_reasons"] = (event.finish_reason,)
    usage = event.usage
    if usage is not None:
        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cache_read_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
        if usage.source.value != "provider":
            attrs["sessionware.usage.source"] = usage.source.value
        saved = cache_saving(prices, event.model, usage, event.cost, event.provider)
        if saved:
            attrs["sessionware.cache.saved.usd"] = float(saved)
    if event.cost is not None:
        attrs["sessionware.cost.usd"] = float(event.cost)
    if event.ttft_ms is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = event.ttft_ms / 1000.0
    if event.app_input_tokens is not None:
        attrs["sessionware.app_input_tokens"] = event.app_input_tokens
    if event.hidden:
        attrs["sessionware.hidden"] = True
    end = event.metadata.get("stream_end") or event.metadata.get("end")
    if end:
        attrs["sessionware.stream.end"] = str(end)
    if event.error is not None:
        attrs["error.type"] = event.error.type
    if capture_content:
        if system:
            attrs["gen_ai.system_instructions"] = json.dumps(
                [{"type": "text", "content": system}] if isinstance(system, str) else system,
                ensure_ascii=False,
                default=str,
            )
        if inputs:
            attrs["gen_ai.input.messages"] = _messages(inputs)
        if event.type is EventType.MESSAGE:
            attrs["gen_ai.output.messages"] = _messages([event])
    return attrs


def memory_attributes(
    event: SessionEvent, session_id: str, *, capture_content: bool = False
) -> dict[str, Any]:
    """A served memory call (``PAGE_FAULT`` event) as a ``search_memory`` operation."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "search_memory",
        "gen_ai.provider.name": "sessionware",
        "gen_ai.conversation.id": session_id,
        "sessionware.memory.tool": event.tool_name or "",
    }
    recalled = event.metadata.get("recalled")
    if isinstance(recalled, list):
        attrs["sessionware.memory.recalled"] = tuple(str(r) for r in recalled)
    tokens = event.metadata.get("tokens")
    if isinstance(tokens, int):
        attrs["sessionware.memory.result_tokens"] = tokens
    if capture_content and event.tool_arguments is not None:
        attrs["sessionware.memory.query"] = json.dumps(event.tool_arguments, ensure_ascii=False, default=str)
    return attrs
