"""One call through the funnel: its request, its session, what it sends and records.

``InterceptedCall`` carries a call from the request the app made to the record of what
came back; ``funnel``'s funnels drive it (see that module for the sequence and the
deferred-recording rules). What varies is decided once, when the call is made:

* the mode, by class: ``ObservedCall`` (``observed``) records off the app's path and
  sends one round; ``HookedCall`` (``hooked``) lets a wrapping mode's ``CallHooks``
  change what is sent, records inline and may send hidden rounds;
* the response's form, by the receiver picked in ``__init__``: a parsed response or a
  stream (each mode's own), a raw response (``with_raw_response``, read from its bytes;
  a raw stream is read from its body as the app reads it, see ``streams``), or a body
  the app reads itself (``with_streaming_response``: teed, see ``tee``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.messages import wrap_json
from sessionware.adapters.engine.record import CallFacts, record_call
from sessionware.adapters.engine.resolve import Choice, choose, merge_scope_metadata
from sessionware.adapters.engine.streams import (
    StreamOwner,
    StreamRecording,
    pending_stream,
    recording_stream_class,
    register_response,
)
from sessionware.adapters.engine.tee import tee_body
from sessionware.adapters.engine.types import CallOutput, CallRequest, Endpoint, EndpointKind
from sessionware.adapters.otel.trace import CallTrace, capture, emit_call
from sessionware.adapters.scope import SessionScope, active_scope, note_session
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.defaults import default_price_book, default_store
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.models import EventFields
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store

__all__ = ["CALLERS", "InterceptedCall", "RawMode", "one_choice", "raw_mode"]

RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

# ``InterceptedCall``'s default scope: the one active on the thread that asks.
CALLERS: Any = object()


class RawMode(StrEnum):
    """Values of the SDKs' raw-response header (``X-Stainless-Raw-Response``)."""

    RAW = "raw"
    """``with_raw_response``: the app gets the HTTP response, and parses it when it likes."""
    STREAM = "stream"
    """``with_streaming_response``: the app reads the body itself."""


def raw_mode(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    value = headers.get(RAW_RESPONSE_HEADER)
    return value if isinstance(value, str) else None


def one_choice(body: Mapping[str, Any]) -> bool:
    """The request asks for a single choice (OpenAI's ``n`` absent or 1)."""
    return body.get("n") in (None, 1)


class InterceptedCall(StreamOwner):
    """One call through the funnel: its request, session, and what to record."""

    __slots__ = (
        "body",
        "caller_scope",
        "captured",
        "config",
        "ended",
        "endpoint",
        "extra_fields",
        "hide_usage",
        "is_async",
        "options",
        "raw",
        "receive",
        "recording",
        "request",
        "round_started",
        "scope",
        "started",
        "state",
        "stream",
        "trace",
    )

    def __init__(
        self,
        config: WrapConfig,
        endpoint: Endpoint,
        options: Any,
        request: CallRequest,
        *,
        stream: bool,
        is_async: bool,
        caller_scope: Any = CALLERS,
        arguments: Mapping[str, Any] | None = None,
        raw: str | None = None,
    ) -> None:
        self.config = config
        self.caller_scope = caller_scope
        """The scope the call was made in (``CALLERS``: this thread's, read when needed)."""
        self.endpoint = endpoint
        self.options = options
        """The SDK's request options (None for a call taken early, until it is adopted)."""
        self.body: Mapping[str, Any] = options.json_data if options is not None else arguments or {}
        """The request body; for a call taken early (managed mode, at the resource method),
        the app's arguments as read there until the SDK's request is adopted."""
        self.request = request
        self.stream = stream
        self.is_async = is_async
        self.raw = raw_mode(options.headers) if options is not None else raw
        self.started = time.perf_counter()
        self.state: SessionState | None = None
        self.scope: SessionScope | None = None
        self.ended: float | None = None
        """``time.perf_counter()`` when the app's call ended (set when its record is deferred)."""
        self.captured: (
            tuple[Any, CallOutput | None, BaseException | None, str | None, float | None] | None
        ) = None
        """What a deferred record reads: response, output, error, end, first token time."""
        self.recording: StreamRecording | None = None
        self.extra_fields: EventFields = {}
        self.hide_usage = False
        self.round_started = self.started
        otel = config.otel_settings()
        self.trace: CallTrace | None = capture(otel, inside=config.otel_inside) if otel is not None else None
        """The OpenTelemetry context of the call, when its spans are exported."""
        self.receive: Callable[[Any], Any]
        """What is done with what the SDK returned (see the module docstring)."""
        if self.raw == RawMode.STREAM:
            self.receive = self._receive_teed
        elif self.raw is not None:
            self.receive = self._receive_raw_stream if stream else self.received_response
        else:
            self.receive = self.received_stream if stream else self.received_response

    # -- session ----------------------------------------------------------------------

    def _choice(self) -> Choice:
        scope = active_scope() if self.caller_scope is CALLERS else self.caller_scope
        config = self.config
        return choose(
            self.request,
            named=config.session_id,
            scope=scope,
            fallback=config.fallback_session_id,
            continued=self._continued,
        )

    def _continued(self, response_id: str) -> str | None:
        threads = self.config.threads
        known = threads.get(response_id)
        if known is None:
            # The call it continues may still be waiting to be recorded.
            self._store().barrier.settle()
            known = threads.get(response_id)
        return known

    def _store(self) -> Store:
        return self.config.store if self.config.store is not None else default_store()

    def _adopt(self, state: SessionState, store: Store, scope: SessionScope | None) -> None:
        self.state = state
        self.scope = scope
        if self.trace is not None:
            self.trace.mark(state)
        if scope is not None:
            scope.handle.bind(store)
        if self.caller_scope is CALLERS:  # a call resolved later is noted by the caller itself
            note_session(state)

    def settled_state(self) -> SessionState:
        """The call's session with every record captured before this call applied.

        For hooks (managed mode) building what to send from the session: what other
        processes appended is taken in too (``SessionState.follow``).
        """
        state = self.state
        if state is None:
            raise InvalidSessionOperation("settled_state", "the call's session is not open yet")
        state.settle()
        state.follow()
        return state

    def open(self) -> bool:
        """Open the session; False (reported) when that failed and the call must pass through."""
        try:
            store = self._store()
            store.barrier.resolve()  # calls made before this one are threaded first
            choice = self._choice()
            state = self.config.live_state(store, choice.session_id)
            if state is None:
                registry = self.config.registry(store)
                state = registry.open(choice.session_id, **choice.header(self.request))
            self._adopt(state, store, choice.scope)
            return True
        except Exception as exc:
            guard.report("the session", exc)
            return False

    def open_live(self) -> bool | None:
        """Open the session if it is live in this process (no I/O, no coroutine); None
        when it must be loaded or created (``aopen``), False as ``open``."""
        try:
            store = self._store()
            if store.barrier.unresolved:
                return None  # calls made before this one are threaded first, off the loop
            choice = self._choice()
            state = self.config.live_state(store, choice.session_id)
            if state is None:
                return None
            self._adopt(state, store, choice.scope)
            return True
        except Exception as exc:
            guard.report("the session", exc)
            return False

    async def aopen(self) -> bool:
        """``open`` for async clients (the store is read without blocking the loop)."""
        try:
            store = self._store()
            await store.barrier.aresolve()
            choice = self._choice()
            registry = self.config.registry(store)
            state = registry.cached(choice.session_id)
            if state is None:
                state = await registry.aopen(choice.session_id, **choice.header(self.request))
            self._adopt(state, store, choice.scope)
            return True
        except Exception as exc:
            guard.report("the session", exc)
            return False

    # -- before the send ----------------------------------------------------------------

    def replacement(self) -> Mapping[str, Any] | None:
        """The body to send instead of the app's (None: the app's)."""
        return None

    def prepare(self, stream_cls: Any, replaced: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
        """The options and stream class to send with (the originals if anything fails).

        ``replaced`` is the body to send instead of the app's (from ``replacement``).
        """
        try:
            body = self.body if replaced is None else replaced
            hide_usage = False
            if self.stream and self.raw is None and getattr(self.config.spec, "stream_usage", False):
                with_usage = self.endpoint.with_stream_usage(body)
                if with_usage is not None:
                    body, hide_usage = with_usage, True
            send_cls = stream_cls
            self.hide_usage = hide_usage
            if self.stream and stream_cls is not None and self.raw != RawMode.STREAM:
                acc = self.endpoint.accumulator(hide_usage_chunk=hide_usage, single_choice=one_choice(body))
                self.recording = StreamRecording(self, acc, is_async=self.is_async)
                send_cls = recording_stream_class(stream_cls, is_async=self.is_async)
            options = (
                self.options if body is self.body else self.options.model_copy(update={"json_data": body})
            )
            return options, send_cls
        except Exception as exc:
            self.recording = None
            guard.report("a request", exc)
            return self.options, stream_cls

    # -- the send ----------------------------------------------------------------------

    def send_once(self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Any]) -> Any:
        """One round: ``send_one(send, send_cls)``; an error is recorded and re-raised."""
        # The stream the SDK builds inside claims the recording (see ``streams``).
        pending = pending_stream.set(self.recording) if self.stream else None
        try:
            return send_one(send, send_cls)
        except BaseException as exc:
            self.failed(exc)
            raise
        finally:
            if pending is not None:
                pending_stream.reset(pending)

    async def asend_once(self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Any]) -> Any:
        """``send_once`` for async clients: the SDK's coroutine itself is awaited."""
        pending = pending_stream.set(self.recording) if self.stream else None
        try:
            return await send_one(send, send_cls)
        except BaseException as exc:
            self.failed(exc)
            raise
        finally:
            if pending is not None:
                pending_stream.reset(pending)

    # -- after the send: what each mode does ----------------------------------------------

    def received_response(self, result: Any) -> Any:
        """A parsed (or raw) response came back: record it; return the options of a
        hidden round to send next, or None."""
        raise NotImplementedError

    def received_stream(self, result: Any) -> Any:
        """A stream came back (it records itself as the app reads it)."""
        raise NotImplementedError

    def failed(self, error: BaseException) -> None:
        """The SDK raised ``error`` (it is re-raised to the app)."""
        raise NotImplementedError

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None:
        raise NotImplementedError

    def completed(self, result: Any) -> Any:
        """Record ``result``; return options for a hidden follow-up round, or None."""
        try:
            return self.receive(result)
        except Exception as exc:
            guard.report("a response", exc)
        return None

    # -- after the send: raw responses -----------------------------------------------------

    def _receive_teed(self, result: Any) -> None:
        http = getattr(result, "http_response", None)
        if http is not None:
            tee_body(http, self, self.endpoint, sse=self.stream)

    def _receive_raw_stream(self, result: Any) -> None:
        http = getattr(result, "http_response", None)
        if http is not None and self.recording is not None:
            register_response(http, self.recording)

    def output_of(self, result: Any) -> CallOutput:
        """What the response says. A raw body that is empty or not JSON is the provider's
        business: the call is recorded without output (incomplete), nothing is reported."""
        if self.raw is None:
            return self.endpoint.read_response(result)
        try:
            data = json.loads(result.http_response.content)
        except ValueError:
            return CallOutput(complete=False)
        return self.endpoint.read_response(wrap_json(data))

    # -- recording ----------------------------------------------------------------------

    def prices(self) -> PriceBook:
        return self.config.prices or default_price_book()

    def facts(
        self,
        *,
        end: str | None = None,
        first_token_at: float | None = None,
        since: float | None = None,
        extra_fields: EventFields | None = None,
    ) -> CallFacts:
        """Facts of the app's call, or (``since``: the round's start) of one hidden round."""
        hidden = since is not None
        now = self.ended if self.ended is not None and not hidden else time.perf_counter()
        start = self.started if since is None else since
        return CallFacts(
            provider=self.config.spec.name,
            kind=self.endpoint.kind,
            request=self.request,
            stream=self.stream,
            latency_ms=(now - start) * 1000.0,
            ttft_ms=(first_token_at - start) * 1000.0 if first_token_at is not None else None,
            end=end,
            extra_fields=self.extra_fields if extra_fields is None else extra_fields,
        )

    def record(
        self,
        *,
        output: CallOutput | None = None,
        error: BaseException | None = None,
        end: str | None = None,
        first_token_at: float | None = None,
    ) -> None:
        state = self.state
        if state is None:
            return
        merge_scope_metadata(state, self.scope)
        facts = self.facts(end=end, first_token_at=first_token_at)
        events = record_call(state, facts, self.prices(), output=output, error=error)
        if self.trace is not None:
            try:
                emit_call(
                    self.trace,
                    state,
                    events,
                    self.prices(),
                    started=self.started,
                    ended=self.ended,
                    requested_model=self.request.model,
                )
            except Exception as exc:
                guard.report("the OpenTelemetry export", exc)
        if self.endpoint.kind is EndpointKind.RESPONSES:
            # Later calls name this one (previous_response_id) or its conversation.
            if output is not None and output.response_id:
                self.config.threads.remember(output.response_id, state.id)
            if self.request.continues is not None:
                self.config.threads.remember(self.request.continues, state.id)
