"""Managed calls taken at the SDK's resource method, before the SDK prepares the app's history.

``attach(client)`` (run by ``wrap(mode="managed")`` through the ``CallHooks`` seam) puts
hooks on the wrapped client's own resource objects:

* ``openai``: ``chat.completions.create`` / ``parse`` (``beta.chat.completions`` too) and
  ``responses.create`` / ``parse``. The ``stream()`` helpers call ``create``, and the
  ``with_raw_response`` / ``with_streaming_response`` views are rebuilt on first use
  around the hooked methods.
* ``anthropic``: the ``messages`` resource's ``_post`` (``beta.messages`` too), which
  ``create``, ``stream()`` and ``parse()`` call with the app's arguments as they are
  (the SDK prepares them later, in ``request``). ``stream()`` calls it when its manager
  is entered, so the context is built when the request is made.

Per call, the hook reads the app's arguments (``arguments``), opens the session,
records what it lacks and builds the context (``ManagedHooks.before_send``), then calls
the SDK's own method with the built conversation in place of the app's, and a header
that lets the request funnel adopt the call (``funnel.hand_over``): from there on the call
runs as any managed call (memory tools added, hidden rounds, streams, recording). The SDK
types, raw responses, helpers and errors are the SDK's own; a budget too small raises
``TokenLimitExceeded`` from the method, before anything is sent.

A call the hook does not take (observe mode, nothing to manage, a bookkeeping failure,
``extra_body`` with conversation fields) goes on with the arguments as read, and the
funnel manages it from the prepared body as before.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.funnel import EARLY_HEADER, active_call, hand_over, recorded_above, take_back
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.messages import reading_once
from sessionware.adapters.engine.types import Endpoint, EndpointKind
from sessionware.adapters.managed.arguments import Arguments, passed_through, read_arguments, sent_arguments
from sessionware.core.errors import TokenLimitExceeded

__all__ = ["attach", "attached", "detach"]

logger = logging.getLogger(__name__)

_STATE_ATTR = "_sessionware_resources"
_VIEWS = ("with_raw_response", "with_streaming_response")
_MESSAGES_PATHS = ("/v1/messages", "/v1/messages?beta=true")


class _Target(NamedTuple):
    path: tuple[str, ...]
    """Attribute path of the resource object from the client."""
    methods: tuple[str, ...]
    kind: EndpointKind
    url: str
    """The endpoint's URL, to find its reader in the provider spec."""


_OPENAI = (
    _Target(("chat", "completions"), ("create", "parse"), EndpointKind.CHAT, "/chat/completions"),
    _Target(("beta", "chat", "completions"), ("create", "parse"), EndpointKind.CHAT, "/chat/completions"),
    _Target(("responses",), ("create", "parse"), EndpointKind.RESPONSES, "/responses"),
)
_ANTHROPIC = (
    _Target(("messages",), ("_post",), EndpointKind.MESSAGES, "/v1/messages"),
    _Target(("beta", "messages"), ("_post",), EndpointKind.MESSAGES, "/v1/messages"),
)


@dataclass
class _Attached:
    config: WrapConfig
    owner: int
    """``id()`` of the client hooked: a shallow copy carries this record in its ``__dict__``."""
    replaced: list[tuple[Any, str, Any, Any]] = field(default_factory=list)
    """(resource, attribute, the instance value before ours or ``_MISSING``, ours)."""


_MISSING: Any = object()


def _own(client: Any) -> _Attached | None:
    """The record of ``client``'s own hooks (a copy of a client carries the original's)."""
    state: _Attached | None = getattr(client, "__dict__", {}).get(_STATE_ATTR)
    return state if state is not None and state.owner == id(client) else None


def attached(client: Any) -> bool:
    return _own(client) is not None


def attach(client: Any, config: WrapConfig, *, is_async: bool) -> None:
    """Hook the resource methods of ``client`` (idempotent; hooks of a configuration
    switched off since are replaced).

    A shallow copy of a client (``copy.copy``) shares the resource objects the original had
    made: those send through the original, as without sessionware, and stay the
    original's; the copy's record of them is dropped and its own resources are hooked.
    """
    attrs = vars(client)
    known = _own(client)
    if known is not None:
        if known.config.enabled or known.config is config:
            return
        detach(client)
    attrs.pop(_STATE_ATTR, None)  # carried over by a copy: it lists the original's resources
    state = _Attached(config, owner=id(client))
    targets = _ANTHROPIC if config.spec.name == "anthropic" else _OPENAI
    for target in targets:
        resource = _resource(client, target.path)
        endpoint = config.spec.endpoint("post", target.url)
        if resource is None or endpoint is None:
            continue
        if getattr(resource, "_client", client) is not client:
            continue  # made by the client this one was copied from, and bound to it
        own = vars(resource)
        for name in target.methods:
            original = getattr(resource, name, None)
            if not callable(original):
                continue
            if name == "_post":
                ours = _post_hook(original, config, endpoint, is_async=is_async)
            else:
                ours = _method_hook(original, config, endpoint, is_async=is_async)
            state.replaced.append((resource, name, own.get(name, _MISSING), ours))
            own[name] = ours
        for view in _VIEWS:  # rebuilt around our methods when next used
            own.pop(view, None)
    attrs[_STATE_ATTR] = state


def detach(client: Any) -> None:
    """Undo ``attach``."""
    state: _Attached | None = vars(client).pop(_STATE_ATTR, None)
    if state is None or state.owner != id(client):
        return
    for resource, name, before, ours in reversed(state.replaced):
        own = vars(resource)
        if own.get(name) is not ours:
            continue  # replaced again after us: left alone (our hook passes through when disabled)
        if before is _MISSING:
            del own[name]
        else:
            own[name] = before
        for view in _VIEWS:
            own.pop(view, None)


def _resource(client: Any, path: tuple[str, ...]) -> Any:
    obj = client
    for name in path:
        try:
            obj = getattr(obj, name)
        except Exception:  # an SDK version without this resource
            return None
    return obj


# -- taking a call ------------------------------------------------------------------------------


class _Taken(NamedTuple):
    arguments: Arguments
    wire: Mapping[str, Any] | None
    """The built body (None: the call goes on with the arguments as read)."""
    token: str | None
    memo: Mapping[int, Any]


def _wanted(config: WrapConfig) -> bool:
    return config.enabled and config.hooks is not None and active_call() is None and not recorded_above()


def _call_for(config: WrapConfig, endpoint: Endpoint, read: Arguments, *, is_async: bool) -> HookedCall:
    request = endpoint.read_request(read.body)
    return HookedCall(
        config,
        endpoint,
        None,
        request,
        stream=read.stream,
        is_async=is_async,
        arguments=read.body,
        raw=read.raw,
    )


def _take(config: WrapConfig, endpoint: Endpoint, read: Arguments, memo: Mapping[int, Any]) -> _Taken:
    """Open the session and build what to send (sync)."""
    try:
        call = _call_for(config, endpoint, read, is_async=False)
        if not call.open():
            return _Taken(read, None, None, memo)
        wire = config.hooks.before_send(call) if config.hooks is not None else None
    except TokenLimitExceeded:
        raise
    except Exception as exc:
        guard.report("a request", exc)
        return _Taken(read, None, None, memo)
    return _Taken(read, wire, hand_over(call) if wire is not None else None, memo)


async def _atake(config: WrapConfig, endpoint: Endpoint, read: Arguments, memo: Mapping[int, Any]) -> _Taken:
    try:
        call = _call_for(config, endpoint, read, is_async=True)
        opened = call.open_live()
        if opened is None:
            opened = await call.aopen()
        if not opened:
            return _Taken(read, None, None, memo)
        hooks = config.hooks
        before = getattr(hooks, "abefore_send", None)
        if before is not None:
            wire = await before(call)
        else:
            wire = hooks.before_send(call) if hooks is not None else None
    except TokenLimitExceeded:
        raise
    except Exception as exc:
        guard.report("a request", exc)
        return _Taken(read, None, None, memo)
    return _Taken(read, wire, hand_over(call) if wire is not None else None, memo)


def _headers_with(headers: Any, token: str) -> dict[str, Any]:
    return {**(headers if isinstance(headers, Mapping) else {}), EARLY_HEADER: token}


# -- openai: the resource methods ---------------------------------------------------------------


def _sent_kwargs(taken: _Taken, kind: EndpointKind) -> dict[str, Any]:
    read = taken.arguments
    if taken.wire is None or taken.token is None:
        return passed_through(read.params, kind, taken.memo)
    sent = sent_arguments(kind, read.params, taken.wire)
    sent["extra_headers"] = _headers_with(read.params.get("extra_headers"), taken.token)
    return sent


def _method_hook(
    original: Callable[..., Any], config: WrapConfig, endpoint: Endpoint, *, is_async: bool
) -> Callable[..., Any]:
    kind = endpoint.kind
    if is_async:

        @functools.wraps(original)
        async def amethod(*args: Any, **kwargs: Any) -> Any:
            if not _wanted(config):
                return await original(*args, **kwargs)
            with reading_once() as memo:
                read = read_arguments(kind, kwargs)
                if not read.early:
                    return await original(*args, **read.params)
                taken = await _atake(config, endpoint, read, memo)
                sent = _sent_kwargs(taken, kind)
            try:
                return await original(*args, **sent)
            finally:
                if taken.token is not None:
                    take_back(taken.token)

        return amethod

    @functools.wraps(original)
    def method(*args: Any, **kwargs: Any) -> Any:
        if not _wanted(config):
            return original(*args, **kwargs)
        with reading_once() as memo:
            read = read_arguments(kind, kwargs)
            if not read.early:
                return original(*args, **read.params)
            taken = _take(config, endpoint, read, memo)
            sent = _sent_kwargs(taken, kind)
        try:
            return original(*args, **sent)
        finally:
            if taken.token is not None:
                take_back(taken.token)

    return method


# -- anthropic: the resource's _post ------------------------------------------------------------


def _post_parts(kwargs: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
    body = kwargs.get("body")
    options = kwargs.get("options")
    return body, options if isinstance(options, Mapping) else {}


def _read_post(
    kind: EndpointKind, body: Mapping[str, Any], options: Mapping[str, Any], stream: Any
) -> Arguments:
    return read_arguments(
        kind, body, headers=options.get("headers"), extra_body=options.get("extra_json"), stream=bool(stream)
    )


def _sent_post(
    taken: _Taken, kind: EndpointKind, kwargs: dict[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    read = taken.arguments
    if taken.wire is None or taken.token is None:
        return {**kwargs, "body": passed_through(read.params, kind, taken.memo)}
    body = sent_arguments(kind, read.params, taken.wire)
    headers = _headers_with(options.get("headers"), taken.token)
    return {**kwargs, "body": body, "options": {**options, "headers": headers}}


def _post_hook(
    original: Callable[..., Any], config: WrapConfig, endpoint: Endpoint, *, is_async: bool
) -> Callable[..., Any]:
    kind = endpoint.kind
    if is_async:

        async def apost(path: str, *args: Any, **kwargs: Any) -> Any:
            body, options = _post_parts(kwargs)
            if path not in _MESSAGES_PATHS or not isinstance(body, Mapping) or not _wanted(config):
                result: Awaitable[Any] = original(path, *args, **kwargs)
                return await result
            with reading_once() as memo:
                read = _read_post(kind, body, options, kwargs.get("stream"))
                if not read.early:
                    return await original(path, *args, **{**kwargs, "body": read.params})
                taken = await _atake(config, endpoint, read, memo)
                sent = _sent_post(taken, kind, kwargs, options)
            try:
                return await original(path, *args, **sent)
            finally:
                if taken.token is not None:
                    take_back(taken.token)

        return apost

    def post(path: str, *args: Any, **kwargs: Any) -> Any:
        body, options = _post_parts(kwargs)
        if path not in _MESSAGES_PATHS or not isinstance(body, Mapping) or not _wanted(config):
            return original(path, *args, **kwargs)
        with reading_once() as memo:
            read = _read_post(kind, body, options, kwargs.get("stream"))
            if not read.early:
                return original(path, *args, **{**kwargs, "body": read.params})
            taken = _take(config, endpoint, read, memo)
            sent = _sent_post(taken, kind, kwargs, options)
        try:
            return original(path, *args, **sent)
        finally:
            if taken.token is not None:
                take_back(taken.token)

    return post
