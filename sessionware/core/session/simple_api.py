"""One-call helpers for tracking without managing a ``SessionManager`` yourself.

>>> import asyncio
>>> exchange = asyncio.run(track_conversation("Hi", "Hello!", model="gpt-4o-mini"))
>>> exchange.ai_event.role.value
'assistant'
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.session.manager import SessionManager
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.stats import SessionStats
from sessionware.core.store.url import StoreLike

__all__ = [
    "LLMCallResult",
    "TrackedExchange",
    "get_conversation_history",
    "get_session_stats",
    "quick_conversation",
    "track_conversation",
    "track_infinite_conversation",
    "track_llm_call",
    "track_tool_use",
]


class TrackedExchange(BaseModel):
    """One user message and its answer, as recorded."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    user_event: SessionEvent
    ai_event: SessionEvent


class LLMCallResult(NamedTuple):
    """What ``track_llm_call`` returns; unpacks as ``text, session_id``."""

    text: str
    session_id: str
    response: Any = None


async def track_conversation(
    user_message: str,
    ai_response: str,
    *,
    model: str | None = None,
    provider: str | None = None,
    session_id: str | None = None,
    store: StoreLike = None,
    usage: TokenUsage | None = None,
) -> TrackedExchange:
    """Record one exchange in ``session_id`` (a new session when None)."""
    sm = SessionManager(session_id, store=store)
    user = await sm.user_says(user_message)
    ai = await sm.ai_responds(ai_response, model=model, provider=provider, usage=usage)
    return TrackedExchange(session_id=sm.session_id, user_event=user, ai_event=ai)


def _text_of(response: Any) -> str:
    """The answer text of an OpenAI/Anthropic response object or dict, or ``str()``."""
    if isinstance(response, str):
        return response
    if isinstance(response, dict):
        choices = response.get("choices")
        if choices:
            return str(choices[0].get("message", {}).get("content") or "")
        content = response.get("content")
        if isinstance(content, list):
            return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        return str(content if content is not None else response)
    choices = getattr(response, "choices", None)
    if choices:
        return str(getattr(choices[0].message, "content", "") or "")
    content = getattr(response, "content", None)
    if isinstance(content, list):
        return "".join(str(getattr(b, "text", "")) for b in content)
    return str(content) if content is not None else str(response)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _usage_of(response: Any) -> TokenUsage | None:
    """Usage from an OpenAI (prompt/completion) or Anthropic (input/output) response."""
    usage = _field(response, "usage")
    if usage is None:
        return None

    def get(name: str, within: Any = usage) -> int:
        return int(_field(within, name) or 0) if within is not None else 0

    if get("prompt_tokens") or get("completion_tokens"):
        return TokenUsage(
            input_tokens=get("prompt_tokens"),
            output_tokens=get("completion_tokens"),
            cache_read_tokens=get("cached_tokens", _field(usage, "prompt_tokens_details")),
            reasoning_tokens=get("reasoning_tokens", _field(usage, "completion_tokens_details")),
        )
    if get("input_tokens") or get("output_tokens"):
        read, write = get("cache_read_input_tokens"), get("cache_creation_input_tokens")
        return TokenUsage(
            input_tokens=get("input_tokens") + read + write,
            output_tokens=get("output_tokens"),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
    return None


def _model_of(response: Any) -> str | None:
    if isinstance(response, str):
        return None
    model = _field(response, "model")
    return model if isinstance(model, str) and model else None


async def track_llm_call(
    user_input: str,
    llm_function: Callable[[str], Any | Awaitable[Any]],
    *,
    model: str | None = None,
    provider: str | None = None,
    session_manager: SessionManager | None = None,
    session_id: str | None = None,
    store: StoreLike = None,
) -> LLMCallResult:
    """Record ``user_input``, call ``llm_function(user_input)`` (sync or async, or a
    sync function returning an awaitable), record its answer, and return it.

    The answer text, the provider's usage (cached and reasoning tokens included) and,
    unless ``model`` is given, the model are read from OpenAI or Anthropic responses
    (objects or dicts); anything else is recorded as ``str(result)``.
    """
    sm = session_manager or SessionManager(session_id, store=store)
    await sm.user_says(user_input)
    result = llm_function(user_input)
    if inspect.isawaitable(result):
        result = await result
    text = _text_of(result)
    await sm.ai_responds(text, model=model or _model_of(result), provider=provider, usage=_usage_of(result))
    return LLMCallResult(text=text, session_id=sm.session_id, response=result)


async def quick_conversation(
    user_message: str, ai_response: str, *, model: str | None = None, store: StoreLike = None
) -> SessionStats:
    """Record one exchange in a new session and return its stats."""
    exchange = await track_conversation(user_message, ai_response, model=model, store=store)
    return await get_session_stats(exchange.session_id, store=store)


async def track_tool_use(
    tool_name: str,
    arguments: Any,
    result: Any,
    *,
    session_id: str | None = None,
    error: str | None = None,
    call_id: str | None = None,
    store: StoreLike = None,
) -> SessionEvent:
    """Record a tool execution in ``session_id`` (a new session when None)."""
    sm = SessionManager(session_id, store=store)
    return await sm.tool_used(tool_name, arguments, result, error, call_id=call_id)


async def get_session_stats(session_id: str, *, store: StoreLike = None) -> SessionStats:
    """Stats of an existing session (``SessionNotFound`` otherwise).

    For a segment of an infinite-context chain (any of them), the stats cover the whole
    chain, from its first segment to its newest, as ``track_infinite_conversation``
    records it.
    """
    from sessionware.core.session.segmentation import SEGMENT_KEY, latest_segment

    manager = await SessionManager.load(session_id, store=store)
    info = manager.state.info
    if SEGMENT_KEY in info.metadata or await latest_segment(manager.store, info) != info.id:
        manager = await SessionManager.load(session_id, store=store, infinite_context=True)
    return await manager.get_stats()


async def get_conversation_history(session_id: str, *, store: StoreLike = None) -> list[dict[str, Any]]:
    """The conversation of an existing session as an OpenAI message list."""
    return await (await SessionManager.load(session_id, store=store)).get_messages_for_llm()


async def track_infinite_conversation(
    user_message: str,
    ai_response: str,
    *,
    model: str | None = None,
    provider: str | None = None,
    session_id: str | None = None,
    token_threshold: int = 4000,
    max_turns: int | None = 20,
    store: StoreLike = None,
    usage: TokenUsage | None = None,
    summarize_fn: Callable[[str, int], Awaitable[str]] | None = None,
) -> TrackedExchange:
    """Record one exchange in an infinite-context conversation.

    ``session_id`` may name any segment of the chain: the exchange goes to its newest
    segment, which rolls over into a new one (carrying a rolling summary) once it
    passes ``token_threshold`` tokens or ``max_turns`` user turns. The returned
    ``session_id`` is the segment that now holds the exchange; pass it (or the first
    id) next time. ``get_session_stats`` of the chain covers every segment.
    """
    sm = SessionManager(
        session_id,
        store=store,
        infinite_context=True,
        token_threshold=token_threshold,
        max_turns_per_segment=max_turns,
        summarize_fn=summarize_fn,
    )
    user = await sm.user_says(user_message)
    ai = await sm.ai_responds(ai_response, model=model, provider=provider, usage=usage)
    return TrackedExchange(session_id=sm.session_id, user_event=user, ai_event=ai)
