"""Managed mode for LiteLLM: ``completion`` / ``acompletion`` through the managed funnel.

LiteLLM's SDK has no pre-call hook that can change messages, so managed mode wraps its
two chat entry points instead. Their keyword arguments are an OpenAI chat body (model,
messages, tools, tool_choice, stream...) plus LiteLLM's own options (``api_key``,
``metadata``, ``client``...), so one call is driven through the same ``InterceptedCall``
and ``ManagedHooks`` a wrapped OpenAI client uses, with the OpenAI chat ``Shape``:

* the "request" of a round is LiteLLM's keyword arguments (``_Round.json_data``); the
  hooks replace ``messages`` and add the VM tools, every other argument goes on as the
  app gave it;
* the "send" is a call of the real ``litellm.completion`` / ``acompletion``; a streamed
  round's ``CustomStreamWrapper`` is handed to the app inside a ``ManagedStream``, which
  iterates LiteLLM's own chunks and passes every other attribute through, so the
  funnel's read-ahead and stream recording work on it as on an SDK stream;
* each round gets its own ``litellm_call_id``, remembered in ``managed_call_ids`` so a
  registered ``SessionCallback`` leaves it alone (the funnel records the call once);
* rounds run inside ``suppress_recording()``, so an OpenAI or Anthropic client that
  LiteLLM sends through and that sessionware wraps or instruments lets them pass.

Nothing here imports LiteLLM at import time: ``litellm`` is looked up when a call is made.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib.util
import logging
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.funnel import suppress_recording
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.types import (
    CallOutput,
    CallRequest,
    Endpoint,
    EndpointKind,
    StreamAccumulator,
)
from sessionware.adapters.litellm.cache_key import add_cache_key, sends_to_openai
from sessionware.adapters.litellm.read import litellm_usage, price_provider, read_output
from sessionware.adapters.openai.chat import ChatAccumulator, ChatEndpoint

__all__ = [
    "AsyncManagedStream",
    "LiteLLMChatEndpoint",
    "LiteLLMSpec",
    "ManagedRounds",
    "ManagedStream",
    "StartedCall",
    "is_managed_call",
    "note_managed_call",
]

logger = logging.getLogger(__name__)

# -- calls made by managed mode -------------------------------------------------------------


class _CallIds:
    """``litellm_call_id``s of rounds sent by managed mode (bounded, most recent kept)."""

    def __init__(self, limit: int = 16_384) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, call_id: str) -> None:
        with self._lock:
            self._ids[call_id] = None
            if len(self._ids) > self.limit:
                self._ids.popitem(last=False)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ids


# Shared with ``SessionCallback``: a round sent here is recorded by the funnel, not by it.
_managed_ids = _CallIds()


def note_managed_call(call_id: str) -> None:
    """Mark ``call_id`` as a round managed mode sends and records (the proxy's first round,
    whose id the proxy gave it)."""
    _managed_ids.add(call_id)


def is_managed_call(call_id: str | None) -> bool:
    """True for a ``litellm_call_id`` of a round that managed mode sent (and records)."""
    return call_id is not None and call_id in _managed_ids


# -- reading LiteLLM's side -----------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _resolve(model: str, custom_provider: str | None) -> tuple[str, str | None]:
    """LiteLLM's own reading of a model name: the bare model and its provider."""
    litellm = sys.modules.get("litellm")
    if litellm is None:
        return model, custom_provider
    try:
        bare, provider, _, _ = litellm.get_llm_provider(model=model, custom_llm_provider=custom_provider)
    except Exception:
        # LiteLLM refuses the call itself with its own error; counting goes on the name.
        return model, custom_provider
    return str(bare), str(provider) if provider else None


def resolve_model(model: Any, custom_provider: Any = None) -> tuple[str, str | None]:
    """``("gpt-4o", "openai")`` for ``"openai/gpt-4o"``: what counting and pricing read."""
    if not isinstance(model, str) or not model:
        return "", None
    return _resolve(model, custom_provider if isinstance(custom_provider, str) else None)


class _LiteLLMAccumulator(ChatAccumulator):
    """Chat chunks as LiteLLM yields them: its usage rides on a chunk that still has an
    (empty) choice, and is read with LiteLLM's usage reader (Anthropic's cache writes)."""

    __slots__ = ()

    def add(self, chunk: Any) -> bool:
        hide = super().add(chunk)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        return hide

    def result(self) -> CallOutput:
        usage, self.usage = self.usage, None
        output = super().result()
        output.usage = litellm_usage(usage)
        self.usage = usage
        return output


class LiteLLMChatEndpoint:
    """LiteLLM's chat keyword arguments read as an OpenAI chat body."""

    kind = EndpointKind.CHAT

    def __init__(self) -> None:
        self._chat = ChatEndpoint()

    def read_request(self, body: Mapping[str, Any]) -> CallRequest:
        request = self._chat.read_request(body)
        # "openai/gpt-4o" is LiteLLM's routing; the model is what tokens and prices follow.
        request.model = resolve_model(body.get("model"), body.get("custom_llm_provider"))[0] or None
        return request

    def read_response(self, response: Any) -> CallOutput:
        return read_output(response)

    def accumulator(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> StreamAccumulator:
        return _LiteLLMAccumulator(hide_usage_chunk=hide_usage_chunk, single_choice=single_choice)

    def with_stream_usage(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # LiteLLM puts the usage it has on the last chunk without being asked


_ENDPOINT = LiteLLMChatEndpoint()


@dataclass(slots=True)
class LiteLLMSpec:
    """The ``ProviderSpec`` of LiteLLM calls to one provider (its price-library id)."""

    name: str
    funnel: str = "completion"
    stream_usage: bool = False

    def endpoint(self, method: str, url: str) -> Endpoint | None:
        return _ENDPOINT


# -- one round ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Round:
    """What one round sends, in the shape the funnel reads SDK request options."""

    json_data: dict[str, Any]
    """LiteLLM's keyword arguments (an OpenAI chat body plus LiteLLM's own options)."""
    headers: None = None
    method: str = "post"
    url: str = "/chat/completions"

    def model_copy(self, *, update: Mapping[str, Any]) -> _Round:
        data = update.get("json_data", self.json_data)
        return dataclasses.replace(self, json_data=dict(data))


class ManagedStream:
    """A streamed managed call as the app reads it: LiteLLM's chunks, memory calls left out.

    Iterating yields the ``ModelResponseStream`` chunks of the round the app gets; any
    other attribute is that round's ``CustomStreamWrapper``'s (``model``,
    ``logging_obj``...). Hidden rounds were read to their end before the app got this.
    """

    def __init__(self, *, source: Any, response: Any = None) -> None:
        self.source = source
        """LiteLLM's ``CustomStreamWrapper`` of the round."""
        self._iterator: Any = self.__stream__()

    def __stream__(self) -> Iterator[Any]:
        yield from self.source

    def __iter__(self) -> Iterator[Any]:
        yield from self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def close(self) -> None:
        """Stop reading (the call is recorded as abandoned if chunks remained)."""
        self._iterator.close()

    def __enter__(self) -> ManagedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("source", "_iterator") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.source, name)


class AsyncManagedStream:
    """``ManagedStream`` for ``acompletion(..., stream=True)``: iterate with ``async for``."""

    def __init__(self, *, source: Any, response: Any = None) -> None:
        self.source = source
        self._iterator: Any = self.__stream__()

    async def __stream__(self) -> AsyncIterator[Any]:
        async for chunk in self.source:
            yield chunk

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for chunk in self._iterator:
            yield chunk

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close LiteLLM's stream."""
        await self._iterator.aclose()
        closing = getattr(self.source, "aclose", None)
        if closing is not None:
            await closing()

    async def __aenter__(self) -> AsyncManagedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        if name in ("source", "_iterator") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.source, name)


# -- the funnel ---------------------------------------------------------------------------------

# Set while managed mode sends a round: LiteLLM entry points patched by ``install`` then
# call straight through (a wrapper around ours, or a Router, must not manage it twice).
_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("sessionware_litellm_sending", default=False)


def sending() -> bool:
    """True inside a round managed mode is sending."""
    return _sending.get()


@functools.cache
def _mcp_missing() -> bool:
    return importlib.util.find_spec("mcp") is None


def _names_server(tool: Any) -> bool:
    return isinstance(tool, Mapping) and (tool.get("type") == "mcp" or "server_url" in tool)


def _plain(message: Any) -> Any:
    """An app message as a dict (apps append LiteLLM's own ``Message`` objects back)."""
    if isinstance(message, dict):
        return message
    dump = getattr(message, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else message


def _body(model: Any, messages: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    body = {"model": model, **kwargs}
    if messages is not None:
        listed = messages if isinstance(messages, list) else list(messages)
        if not all(isinstance(m, dict) for m in listed):
            listed = [_plain(m) for m in listed]
        body["messages"] = listed
    return body


def _add_cache_key(kwargs: dict[str, Any], call: HookedCall) -> None:
    """A round to OpenAI's own API carries its session's ``prompt_cache_key`` (``cache_key``)."""
    try:
        provider = resolve_model(kwargs.get("model"), kwargs.get("custom_llm_provider"))[1]
        api_base = kwargs.get("api_base") or kwargs.get("base_url")
        if sends_to_openai(provider, api_base, kwargs.get("client")):
            add_cache_key(kwargs, call.state.id if call.state is not None else None)
    except Exception as exc:
        guard.report("a LiteLLM call's prompt_cache_key", exc)


@dataclass(slots=True)
class StartedCall:
    """A managed call whose first round the caller sends itself (``ManagedRounds.astart``)."""

    call: HookedCall
    send: Any
    """The options of the first round: ``send.json_data`` is what to send."""
    send_cls: Any


class ManagedRounds:
    """Sends one LiteLLM call's rounds through a ``HookedCall`` with managed hooks.

    ``config_for(body, provider)`` gives the ``WrapConfig`` of a call (per provider:
    prices and context windows are looked up under it; per-call ``metadata`` may name
    the session).
    """

    def __init__(self, config_for: Callable[[Mapping[str, Any], str], WrapConfig]) -> None:
        self.config_for = config_for

    def _begin(self, body: dict[str, Any], *, is_async: bool) -> HookedCall | None:
        try:
            if guard.kept is not None:
                guard.raise_deferred()  # strict mode: a failure of the recorder thread surfaces
            request = _ENDPOINT.read_request(body)
            provider = resolve_model(body.get("model"), body.get("custom_llm_provider"))[1]
            config = self.config_for(body, price_provider(provider) or "litellm")
            if not config.enabled:
                return None
            round_ = _Round(body)
            return HookedCall(
                config, _ENDPOINT, round_, request, stream=body.get("stream") is True, is_async=is_async
            )
        except Exception as exc:
            guard.report("a LiteLLM call", exc)
            return None

    @staticmethod
    def _arguments(options: _Round, first: bool, call: HookedCall | None = None) -> dict[str, Any]:
        kwargs = dict(options.json_data)
        if call is not None:
            _add_cache_key(kwargs, call)
        if kwargs.get("tools") and _mcp_missing() and not any(_names_server(t) for t in kwargs["tools"]):
            # LiteLLM 1.106 imports its MCP gateway (the optional ``mcp`` package) for any
            # call with tools, only to find that function tools do not name a gateway
            # server; without the package that import fails. Our memory tools are function
            # tools: tell LiteLLM what it would conclude itself.
            kwargs.setdefault("_skip_mcp_handler", True)
        call_id = kwargs.get("litellm_call_id") if first else None
        if not isinstance(call_id, str) or not call_id:
            call_id = str(uuid.uuid4())
        kwargs["litellm_call_id"] = call_id
        _managed_ids.add(call_id)
        return kwargs

    def completion(
        self, original: Callable[..., Any], model: Any, messages: Any, kwargs: dict[str, Any]
    ) -> Any:
        body = _body(model, messages, kwargs)
        call = self._begin(body, is_async=False) if not _sending.get() else None
        if call is None:
            return original(**body)
        sending_token = _sending.set(True)
        try:
            with suppress_recording():
                if not call.open():
                    return original(**body)
                send, send_cls = call.prepare(ManagedStream if call.stream else None, call.replacement())

                def send_one(send: Any, send_cls: Any) -> Any:
                    result = original(**self._arguments(send, call.rounds == 0, call))
                    return result if send_cls is None else send_cls(source=result)

                return call.send_rounds(send, send_cls, send_one)
        finally:
            _sending.reset(sending_token)

    async def acompletion(
        self, original: Callable[..., Awaitable[Any]], model: Any, messages: Any, kwargs: dict[str, Any]
    ) -> Any:
        body = _body(model, messages, kwargs)
        call = self._begin(body, is_async=True) if not _sending.get() else None
        if call is None:
            return await original(**body)
        sending_token = _sending.set(True)
        try:
            with suppress_recording():
                opened = call.open_live()
                if opened is None:
                    opened = await call.aopen()
                if not opened:
                    return await original(**body)
                send, send_cls = call.prepare(
                    AsyncManagedStream if call.stream else None, await call.areplacement()
                )

                async def send_one(send: Any, send_cls: Any) -> Any:
                    result = await original(**self._arguments(send, call.rounds == 0, call))
                    return result if send_cls is None else send_cls(source=result)

                return await call.asend_rounds(send, send_cls, send_one)
        finally:
            _sending.reset(sending_token)

    # -- a call whose rounds are sent by someone else (the LiteLLM proxy) -------------------

    async def astart(self, body: dict[str, Any]) -> StartedCall | None:
        """Open the session of ``body`` (LiteLLM's keyword arguments) and build its first
        round; None when the call goes as it is. The caller sends ``send.json_data``, then
        hands what came back to ``afinish``. ``TokenLimitExceeded`` reaches the caller."""
        call = self._begin(body, is_async=True)
        if call is None:
            return None
        with suppress_recording():
            opened = call.open_live()
            if opened is None:
                opened = await call.aopen()
            if not opened:
                return None
            send, send_cls = call.prepare(
                AsyncManagedStream if call.stream else None, await call.areplacement()
            )
        if isinstance(send.json_data, dict):
            _add_cache_key(send.json_data, call)  # the built request the proxy routes
        return StartedCall(call, send, send_cls)

    async def afinish(
        self,
        started: StartedCall,
        first: Any,
        send_next: Callable[..., Awaitable[Any]],
    ) -> Any:
        """What the app receives for ``started``, whose first round returned ``first`` (a
        response, or a stream of LiteLLM's chunks): memory calls are served and further
        rounds sent with ``send_next(**arguments)``. A streamed call returns an
        ``AsyncManagedStream``."""
        call = started.call
        pending = [first]

        async def send_one(send: Any, send_cls: Any) -> Any:
            if pending:
                result = pending.pop()
            else:
                arguments = self._arguments(send, False, call)
                arguments.pop("litellm_logging_obj", None)  # the first round's, not this one's
                result = await send_next(**arguments)
            return result if send_cls is None else send_cls(source=result)

        sending_token = _sending.set(True)
        try:
            with suppress_recording():
                return await call.asend_rounds(started.send, started.send_cls, send_one)
        finally:
            _sending.reset(sending_token)
