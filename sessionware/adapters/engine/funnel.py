"""Provider-neutral interception at the SDK's request funnel.

Both SDKs send every endpoint, helper (``stream()``, ``parse()``) and raw-response
variant through one client method that receives the final URL and JSON body
(``ProviderSpec.funnel``). ``install.install`` replaces that method **on the client instance**
with a hook that, per call:

1. reads the body into a ``CallRequest`` (unknown endpoints pass straight through);
2. resolves and opens the session (``resolve``'s rule; sync clients: ``open``; async: ``aopen``);
3. builds what to send (``CallHooks.before_send``; usage asked for in chat streams);
4. calls the SDK's own method, with a recording subclass of its ``stream_cls``;
5. records the output, the error (then re-raised unchanged), or, for streams, lets the
   stream record itself when it ends (see ``streams``).

Recording is deferred: in observe mode (no ``CallHooks``) step 5 only captures
references (the response object or the error, the end time, the stream's output) and
queues the work on the session (``SessionState.defer``) for the recorder thread
(``background``), which reads the conversation, diffs it and records the events. Every
read or write of the session settles that work first, in order, so the app, a
``SessionManager`` or a flush never see a session without the calls made before.

A plain (not streamed, not raw) observe-mode call skips steps 1-3 on the app's path: the
funnel only captures it (``pending.PendingCall``), and the recorder thread reads its
request and works out its session later, through the store's resolution queue
(``DeferralBarrier.defer_unresolved``). Every read of the store or of a live session, and every call
that opens its session on the app's path, runs that queue first, so the order holds.

Every step but the SDK call runs under the guard: a bookkeeping failure is reported
(``guard.report``) and the app's call proceeds as if unwrapped. A call made while
another intercepted call is in flight in the same context (a second instrumentation
layer of ours, an SDK helper calling back in) passes through, so nothing is counted
twice; ``suppress_recording()`` does the same on purpose (for an adapter that records a
call at a higher level, such as LiteLLM's).

The seam for managed mode
-------------------------
``CallHooks`` is where a mode other than observing plugs in; observe mode has none.

* ``before_send(call)`` may return a replacement JSON body: the SDK sends it instead
  of the app's (``call.request`` stays the app's request, which is what gets diffed and
  recorded; ``call.extra_fields`` adds fields such as ``app_input_tokens`` to the
  recorded output event).
* ``after_response(call, output)`` may return the body of a hidden follow-up round (the
  model called a memory tool; the hook appended its answer). The round's output is
  recorded as a ``hidden`` event (with ``call.hidden_fields``, never ``extra_fields``)
  and the next response is what the app receives; ``max_rounds`` bounds the loop. The
  hook sees every output, the last one too, so it can take out what the app must not
  see (``call.substitute`` replaces the returned response object).
* Optional twins, looked up with ``getattr``: ``after_stream(call, stream)`` decides on
  a streamed round before the app reads it (it may read ahead, then hand the stream
  over, or consume it and return a ``HiddenRound``); ``abefore_send`` and
  ``aafter_stream`` are what async clients await instead.
* A hook refuses a call before anything is sent by raising ``TokenLimitExceeded``: it
  reaches the app (the hook records the refusal); every other hook failure is reported
  and the app's own request is sent.
* A mode may take a call **early**, at the SDK's resource method (managed mode does, so
  the SDK prepares the built request instead of the app's whole history): it opens the
  session and builds what to send there, then hands the call over (``hand_over``) with a
  header the funnel takes out again; the funnel adopts the call (``HookedCall.adopt``;
  the optional hook ``adopted(call)`` may still change the prepared body) and runs the
  rounds as for any other call. ``resend`` sends a later round of a call whose funnel
  already returned (a stream the app is reading that goes on with the next round).
* Calls of a client with hooks record **inline**, on the caller's thread (outputs,
  errors, streams' ends and hidden rounds alike), so what a hook reads next includes
  them. ``call.settled_state()`` is the session with every record captured before this
  call applied (other observe-mode calls of the session included): build context from
  it. Reading ``state.events`` / ``state.info`` settles as well.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.call import raw_mode
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.observed import ObservedCall
from sessionware.adapters.engine.pending import PendingCall
from sessionware.adapters.engine.streams import pending_stream
from sessionware.adapters.engine.types import EndpointKind
from sessionware.adapters.openai.cache_key import with_cache_key
from sessionware.adapters.otel.trace import instrumented_inside
from sessionware.adapters.scope import active_scope
from sessionware.core.defaults import default_store
from sessionware.core.errors import InvalidSessionOperation

__all__ = [
    "EARLY_HEADER",
    "active_call",
    "add_outer_recorder",
    "afunnel_hook",
    "aresend",
    "funnel_hook",
    "hand_over",
    "recorded_above",
    "resend",
    "suppress_recording",
    "take_back",
]


# The intercepted call in flight in this context, or _SUPPRESSED: nested calls pass through.
_SUPPRESSED: Any = object()
_active: contextvars.ContextVar[Any] = contextvars.ContextVar("sessionware_active_call", default=None)


# Checks that say the call in progress is recorded by a higher-level adapter that cannot
# wrap it in ``suppress_recording()`` (LiteLLM's callback runs after the call): such
# calls pass through, so they are counted once.
_recorded_above: list[Callable[[], bool]] = []


def active_call() -> Any:
    """The intercepted call in flight in this context (None when there is none)."""
    return _active.get()


def recorded_above() -> bool:
    """True while a higher-level adapter records the call in progress (see ``add_outer_recorder``)."""
    return bool(_recorded_above) and any(check() for check in _recorded_above)


# Calls taken early (at the resource method), waiting for the SDK's request: by token.
EARLY_HEADER = "X-Sessionware-Call"
_EARLY_LIMIT = 256
_early: OrderedDict[str, HookedCall] = OrderedDict()
_early_lock = threading.Lock()
_tokens = itertools.count(1)


def hand_over(call: HookedCall) -> str:
    """Register a call taken early; send the SDK's request with ``{EARLY_HEADER: token}``
    among its headers and the funnel adopts it. A request never made (the SDK refused the
    arguments, a stream manager never entered) is forgotten after ``_EARLY_LIMIT`` more."""
    token = f"{next(_tokens)}"
    with _early_lock:
        _early[token] = call
        while len(_early) > _EARLY_LIMIT:
            _early.popitem(last=False)
    return token


def take_back(token: str) -> None:
    """Forget a call handed over whose request was not made (the SDK raised before)."""
    with _early_lock:
        _early.pop(token, None)


def _claim(config: WrapConfig, options: Any) -> tuple[Any, HookedCall | None]:
    """The options without our header, and the call taken early they carry."""
    headers = options.headers
    if not isinstance(headers, dict) or EARLY_HEADER not in headers:
        return options, None
    token = headers[EARLY_HEADER]
    options = options.model_copy(update={"headers": {k: v for k, v in headers.items() if k != EARLY_HEADER}})
    with _early_lock:
        call = _early.pop(token, None)
    if call is None or call.config is not config or not config.enabled:
        return options, None
    if config.cache_key and call.endpoint.kind in _CACHE_KEYED:
        # The session the call was taken into (the app's conversation, not the built one).
        options = with_cache_key(options, call.state.id if call.state is not None else None)
    return options, call


def add_outer_recorder(check: Callable[[], bool]) -> None:
    """Let funnel calls pass through unrecorded while ``check()`` is true (idempotent)."""
    if check not in _recorded_above:
        _recorded_above.append(check)


@contextmanager
def suppress_recording() -> Iterator[None]:
    """Let wrapped calls made inside the block pass through unrecorded.

    For code that records the same call itself at a higher level.
    """
    token = _active.set(_SUPPRESSED)
    try:
        yield
    finally:
        _active.reset(token)


_CACHE_KEYED = frozenset({EndpointKind.CHAT, EndpointKind.RESPONSES})


def _begin(
    config: WrapConfig, options: Any, stream: bool, *, is_async: bool
) -> ObservedCall | HookedCall | PendingCall | None:
    """How to intercept the call: captured only (a plain observe-mode call, see
    ``pending``), intercepted in full, or not at all (None: it passes through)."""
    if not config.enabled or _active.get() is not None:
        return None
    if recorded_above():
        return None
    if guard.kept is not None:
        guard.raise_deferred()  # strict mode: a failure of the recorder thread surfaces here
    try:
        endpoint = config.spec.endpoint(options.method, options.url)
        body = options.json_data
        if endpoint is None or not isinstance(body, dict):
            return None
        if config.cache_key and endpoint.kind in _CACHE_KEYED:
            scope = active_scope()
            options = with_cache_key(options, config.session_id or (scope.id if scope else None))
            body = options.json_data
        if not stream and config.hooks is None and raw_mode(options.headers) is None:
            store = config.store if config.store is not None else default_store()
            return PendingCall(config, endpoint, options, active_scope(), store)
        kind = ObservedCall if config.hooks is None else HookedCall
        return kind(config, endpoint, options, endpoint.read_request(body), stream=stream, is_async=is_async)
    except Exception as exc:
        guard.report("a request", exc)
        return None


def funnel_hook(config: WrapConfig, original: Callable[..., Any]) -> Callable[..., Any]:
    """The hook that replaces a sync client's funnel ``original``."""
    config.otel_inside = instrumented_inside(original)

    def request(
        cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None, **kwargs: Any
    ) -> Any:
        if config.hooks is not None:
            options, early = _claim(config, options)
            if early is not None:
                return _send_early(
                    early,
                    options,
                    stream=stream,
                    stream_cls=stream_cls,
                    send=original,
                    cast_to=cast_to,
                    kwargs=kwargs,
                )
        call = _begin(config, options, stream, is_async=False)
        if call is None:
            return original(cast_to, options, stream=stream, stream_cls=stream_cls, **kwargs)
        if isinstance(call, PendingCall):
            token = _active.set(call)
            try:
                result = original(cast_to, call.options, stream=stream, stream_cls=stream_cls, **kwargs)
            except BaseException as exc:
                call.finish(None, exc)
                raise
            finally:
                _active.reset(token)
            call.finish(result, None)
            return result
        token = _active.set(call)
        try:
            if not call.open():
                return original(cast_to, options, stream=stream, stream_cls=stream_cls, **kwargs)
            send, send_cls = call.prepare(stream_cls, call.replacement())
            return call.send_rounds(
                send,
                send_cls,
                lambda opts, cls: original(cast_to, opts, stream=stream, stream_cls=cls, **kwargs),
            )
        finally:
            _active.reset(token)

    return request


def afunnel_hook(
    config: WrapConfig, original: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """The hook that replaces an async client's funnel ``original``."""
    config.otel_inside = instrumented_inside(original)

    async def request(
        cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None, **kwargs: Any
    ) -> Any:
        if config.hooks is not None:
            options, early = _claim(config, options)
            if early is not None:
                return await _asend_early(
                    early,
                    options,
                    stream=stream,
                    stream_cls=stream_cls,
                    send=original,
                    cast_to=cast_to,
                    kwargs=kwargs,
                )
        call = _begin(config, options, stream, is_async=True)
        if call is None:
            return await original(cast_to, options, stream=stream, stream_cls=stream_cls, **kwargs)
        if isinstance(call, PendingCall):
            token = _active.set(call)
            try:
                result = await original(cast_to, call.options, stream=stream, stream_cls=stream_cls, **kwargs)
            except BaseException as exc:
                call.finish(None, exc)
                raise
            finally:
                _active.reset(token)
            call.finish(result, None)
            return result
        token = _active.set(call)
        try:
            opened = call.open_live()
            if opened is None:
                opened = await call.aopen()
            if not opened:
                return await original(cast_to, options, stream=stream, stream_cls=stream_cls, **kwargs)
            replaced = await call.areplacement() if isinstance(call, HookedCall) else None
            send, send_cls = call.prepare(stream_cls, replaced)
            # The SDK's coroutine itself is awaited: no extra coroutine per call.
            return await call.asend_rounds(
                send,
                send_cls,
                lambda opts, cls: original(cast_to, opts, stream=stream, stream_cls=cls, **kwargs),
            )
        finally:
            _active.reset(token)

    return request


def _send_early(
    call: HookedCall,
    options: Any,
    *,
    stream: bool,
    stream_cls: Any,
    send: Callable[..., Any],
    cast_to: Any,
    kwargs: dict[str, Any],
) -> Any:
    """The rounds of a call taken early (its session is open, its body built)."""
    token = _active.set(call)
    try:
        options, send_cls = call.prepare(stream_cls, call.adopt(options, stream))
        return call.send_rounds(
            options, send_cls, lambda opts, cls: send(cast_to, opts, stream=stream, stream_cls=cls, **kwargs)
        )
    finally:
        _active.reset(token)


async def _asend_early(
    call: HookedCall,
    options: Any,
    *,
    stream: bool,
    stream_cls: Any,
    send: Callable[..., Awaitable[Any]],
    cast_to: Any,
    kwargs: dict[str, Any],
) -> Any:
    token = _active.set(call)
    try:
        options, send_cls = call.prepare(stream_cls, call.adopt(options, stream))
        return await call.asend_rounds(
            options, send_cls, lambda opts, cls: send(cast_to, opts, stream=stream, stream_cls=cls, **kwargs)
        )
    finally:
        _active.reset(token)


def resend(call: HookedCall, options: Any) -> Any:
    """Send another round of ``call`` after the funnel returned (a stream the app is reading
    goes on with it): the same way as its first rounds, recorded by its current recording."""
    if call.sender is None:
        raise InvalidSessionOperation("resend", "the call has sent no round yet")
    send_one, send_cls = call.sender
    token = _active.set(call)
    pending = pending_stream.set(call.recording)
    try:
        return send_one(options, send_cls)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        pending_stream.reset(pending)
        _active.reset(token)


async def aresend(call: HookedCall, options: Any) -> Any:
    """``resend`` for async clients."""
    if call.sender is None:
        raise InvalidSessionOperation("resend", "the call has sent no round yet")
    send_one, send_cls = call.sender
    token = _active.set(call)
    pending = pending_stream.set(call.recording)
    try:
        return await send_one(options, send_cls)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        pending_stream.reset(pending)
        _active.reset(token)
