"""One call through the funnel: its request, its session, what it sends and records.

``InterceptedCall`` carries a call from the request the app made to the record of what
came back; ``funnel``'s funnels drive it (see that module for the sequence and the
deferred-recording rules).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sessionware.adapters.engine import background, guard
from sessionware.adapters.engine.config import HiddenRound, WrapConfig
from sessionware.adapters.engine.messages import fingerprint, wrap_json
from sessionware.adapters.engine.record import CallFacts, record_call, record_hidden
from sessionware.adapters.engine.streams import (
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
from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store

__all__ = ["ASK", "CALLERS", "InterceptedCall", "raw_mode"]

logger = logging.getLogger(__name__)

RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

# ``prepare``'s default: ask the hook's sync ``before_send`` (async callers ask first).
ASK: Any = object()
# ``InterceptedCall``'s default scope: the one active on the thread that asks.
CALLERS: Any = object()


def raw_mode(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    value = headers.get(RAW_RESPONSE_HEADER)
    return value if isinstance(value, str) else None


def _one_choice(body: Mapping[str, Any]) -> bool:
    """The request asks for a single choice (OpenAI's ``n`` absent or 1)."""
    return body.get("n") in (None, 1)


class InterceptedCall:
    """One call through the funnel: its request, session, and what to record."""

    __slots__ = (
        "body",
        "caller_scope",
        "captured",
        "config",
        "ended",
        "endpoint",
        "extra_fields",
        "hidden_fields",
        "hide_usage",
        "hook_state",
        "is_async",
        "last_response",
        "options",
        "raw",
        "recording",
        "request",
        "round_started",
        "rounds",
        "scope",
        "started",
        "state",
        "stream",
        "substitute",
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
    ) -> None:
        self.config = config
        self.caller_scope = caller_scope
        """The scope the call was made in (``CALLERS``: this thread's, read when needed)."""
        self.endpoint = endpoint
        self.options = options
        self.body: Mapping[str, Any] = options.json_data
        self.request = request
        self.stream = stream
        self.is_async = is_async
        self.raw = raw_mode(options.headers)
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
        self.extra_fields: dict[str, Any] = {}
        self.rounds = 0
        self.hook_state: Any = None
        """What the wrapping mode keeps about this call between its hooks."""
        self.hidden_fields: dict[str, Any] = {}
        """Fields of the next hidden event (``extra_fields`` belong to the app's call)."""
        self.hide_usage = False
        self.round_started = self.started
        self.substitute: Any = None
        """When set, returned to the app instead of the SDK's last response."""
        self.last_response: Any = None
        """The SDK's response of the round being read (non-streamed calls)."""
        otel = config.otel_settings()
        self.trace: CallTrace | None = capture(otel) if otel is not None else None
        """The OpenTelemetry context of the call, when its spans are exported."""

    # -- session ----------------------------------------------------------------------

    def _target(self) -> tuple[str, SessionScope | None]:
        """The session id, and the scope that chose it."""
        config = self.config
        if config.session_id is not None:
            return config.session_id, None
        scope = active_scope() if self.caller_scope is CALLERS else self.caller_scope
        if scope is not None:
            return scope.id, scope
        request = self.request
        if request.continues is not None:
            known = config.threads.get(request.continues)
            if known is None:
                # The call it continues may still be waiting to be recorded.
                self._store().settle()
                known = config.threads.get(request.continues)
            if known is not None:
                return known, None
        auto = fingerprint(request.system, request.first_user) if request.conversational else None
        return auto or config.fallback_session_id, None

    def _header(self, scope: SessionScope | None) -> dict[str, Any]:
        """What a session created by this call starts with."""
        header: dict[str, Any] = {}
        if self.request.system is not None:
            header["system_prompt"] = self.request.system
        if scope is not None:
            header["metadata"] = dict(scope.handle.metadata)
        elif self.config.session_id is None:
            header["metadata"] = {"auto": True}
        return header

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

    def _merge_metadata(self, state: SessionState) -> None:
        """Add the scope's metadata to the session's (when the call is recorded)."""
        scope = self.scope
        wanted = scope.handle.metadata if scope is not None else None
        if wanted and any(state.info.metadata.get(k) != v for k, v in wanted.items()):
            state.save_header(metadata={**state.info.metadata, **wanted})

    def settled_state(self) -> SessionState:
        """The call's session with every record captured before this call applied.

        For hooks (managed mode) building what to send from the session.
        """
        state = self.state
        if state is None:
            raise InvalidSessionOperation("settled_state", "the call's session is not open yet")
        state.settle()
        return state

    def open_sync(self) -> bool:
        """Open the session; False (reported) when that failed and the call must pass through."""
        try:
            store = self._store()
            store.resolve()  # calls made before this one are threaded first
            session_id, scope = self._target()
            state = self.config.live_state(store, session_id)
            if state is None:
                state = self.config.registry(store).open_sync(session_id, **self._header(scope))
            self._adopt(state, store, scope)
            return True
        except Exception as exc:
            guard.report("the session", exc)
            return False

    def open_live(self) -> bool | None:
        """Open the session if it is live in this process (no I/O, no coroutine); None
        when it must be loaded or created (``open_async``), False as ``open_sync``."""
        try:
            store = self._store()
            if store.unresolved:
                return None  # calls made before this one are threaded first, off the loop
            session_id, scope = self._target()
            state = self.config.live_state(store, session_id)
            if state is None:
                return None
            self._adopt(state, store, scope)
            return True
        except Exception as exc:
            guard.report("the session", exc)
            return False

    async def open_async(self) -> bool:
        try:
            store = self._store()
            await store.aresolve()
            session_id, scope = self._target()
            registry = self.config.registry(store)
            state = registry.cached(session_id)
            if state is None:
                state = await registry.open(session_id, **self._header(scope))
            self._adopt(state, store, scope)
            return True
        except Exception as exc:
            guard.report("the session", exc)
            return False

    # -- before the send ----------------------------------------------------------------

    async def areplacement(self) -> Any:
        """The body an async hook sends instead (``ASK``: the hooks have no async twin)."""
        before = getattr(self.config.hooks, "abefore_send", None)
        if before is None:
            return ASK
        try:
            return await before(self)
        except TokenLimitExceeded:
            raise
        except Exception as exc:
            guard.report("a request", exc)
            return None

    def prepare(self, stream_cls: Any, replaced: Any = ASK) -> tuple[Any, Any]:
        """The options and stream class to send with (the originals if anything fails).

        ``TokenLimitExceeded`` from the hook is the one error that reaches the app.
        """
        try:
            body = self.body
            hooks = self.config.hooks
            if hooks is not None:
                if replaced is ASK:
                    replaced = hooks.before_send(self)
                if replaced is not None:
                    body = replaced
            hide_usage = False
            if self.stream and self.raw is None and getattr(self.config.spec, "stream_usage", False):
                with_usage = self.endpoint.with_stream_usage(body)
                if with_usage is not None:
                    body, hide_usage = with_usage, True
            send_cls = stream_cls
            self.hide_usage = hide_usage
            if self.stream and stream_cls is not None and self.raw != "stream":
                acc = self.endpoint.accumulator(hide_usage_chunk=hide_usage, single_choice=_one_choice(body))
                self.recording = StreamRecording(self, acc, is_async=self.is_async)
                send_cls = recording_stream_class(stream_cls, is_async=self.is_async)
            options = (
                self.options if body is self.body else self.options.model_copy(update={"json_data": body})
            )
            return options, send_cls
        except TokenLimitExceeded:
            raise
        except Exception as exc:
            self.recording = None
            guard.report("a request", exc)
            return self.options, stream_cls

    # -- the rounds ---------------------------------------------------------------------

    def send_rounds(self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Any]) -> Any:
        """Send ``send`` with ``send_one(options, stream_cls)``, then every hidden round
        the hooks ask for; return what the app receives. Errors are recorded and re-raised.
        """
        while True:
            # The stream the SDK builds inside claims the recording (see ``streams``).
            pending = pending_stream.set(self.recording) if self.stream else None
            try:
                result = send_one(send, send_cls)
            except BaseException as exc:
                self.failed(exc)
                raise
            finally:
                if pending is not None:
                    pending_stream.reset(pending)
            send = self.completed(result)
            if send is None:
                return result if self.substitute is None else self.substitute

    async def asend_rounds(
        self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Awaitable[Any]]
    ) -> Any:
        """``send_rounds`` for async clients (a streamed round is read with ``aafter_stream``)."""
        hooked = self.config.hooks is not None
        while True:
            pending = pending_stream.set(self.recording) if self.stream else None
            try:
                result = await send_one(send, send_cls)
            except BaseException as exc:
                self.failed(exc)
                raise
            finally:
                if pending is not None:
                    pending_stream.reset(pending)
            # Observe mode needs no coroutine here.
            send = await self.acompleted(result) if hooked else self.completed(result)
            if send is None:
                return result if self.substitute is None else self.substitute

    # -- after the send -----------------------------------------------------------------

    def completed(self, result: Any) -> Any:
        """Record ``result``; return options for a hidden follow-up round, or None."""
        try:
            if self.raw == "stream":
                http = getattr(result, "http_response", None)
                if http is not None:
                    tee_body(http, self, self.endpoint, sse=self.stream)
                return None
            if self.stream:
                if self.raw is not None:
                    http = getattr(result, "http_response", None)
                    if http is not None and self.recording is not None:
                        register_response(http, self.recording)
                    return None
                after = getattr(self.config.hooks, "after_stream", None)
                if after is None or self.recording is None:
                    return None
                return self._next_round(after(self, result))
            if self.config.hooks is None:
                self._defer(result=result)
                return None
            output = self._output_of(result)
            self.last_response = result
            follow_up = self._follow_up(output)
            if follow_up is not None:
                return follow_up
            self._record(output=output)
        except Exception as exc:
            guard.report("a response", exc)
        return None

    async def acompleted(self, result: Any) -> Any:
        """``completed`` for async clients: a streamed round is read with ``aafter_stream``."""
        after = getattr(self.config.hooks, "aafter_stream", None)
        if not self.stream or self.raw is not None or after is None or self.recording is None:
            return self.completed(result)
        try:
            return self._next_round(await after(self, result))
        except Exception as exc:
            guard.report("a stream", exc)
        return None

    def _follow_up(self, output: CallOutput) -> Any:
        hooks = self.config.hooks
        if hooks is None or self.raw == "stream":
            return None
        body = hooks.after_response(self, output)
        if body is None:
            return None
        if self.rounds >= self.config.max_rounds:
            logger.warning("hidden rounds stopped at max_rounds=%d", self.config.max_rounds)
            return None
        return self._next_round(HiddenRound(body, output))

    def _next_round(self, hidden: HiddenRound | None) -> Any:
        """Record ``hidden`` and return the options of the round after it (None: no round)."""
        if hidden is None:
            return None
        self.rounds += 1
        assert self.state is not None
        facts = self._facts(first_token_at=hidden.first_token_at, hidden=True)
        record_hidden(self.state, facts, hidden.output, self._prices())
        self.hidden_fields = {}
        self.round_started = time.perf_counter()
        if self.recording is not None:
            acc = self.endpoint.accumulator(
                hide_usage_chunk=self.hide_usage, single_choice=_one_choice(hidden.body)
            )
            self.recording = StreamRecording(self, acc, is_async=self.is_async)
        body = hidden.body
        if self.hide_usage:  # the round after asks for the stream's usage as the first did
            body = self.endpoint.with_stream_usage(body) or body
        return self.options.model_copy(update={"json_data": body})

    def failed(self, error: BaseException) -> None:
        try:
            if self.config.hooks is None:
                self._defer(error=error)
                return
            # What the app asked to send was not billed: no tokens were saved either.
            self.extra_fields.pop("app_input_tokens", None)
            self._record(error=error)
        except Exception as exc:
            guard.report("a failed call", exc)

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None:
        try:
            if self.config.hooks is None:
                self._defer(output=output, error=error, end=end, first_token_at=first_token_at)
                return
            self._record(output=output, error=error, end=end, first_token_at=first_token_at)
        except Exception as exc:
            guard.report("a stream", exc)

    # -- deferred recording ---------------------------------------------------------------

    def _defer(
        self,
        *,
        result: Any = None,
        output: CallOutput | None = None,
        error: BaseException | None = None,
        end: str | None = None,
        first_token_at: float | None = None,
        ended: float | None = None,
    ) -> None:
        """Capture what the record needs and queue the recording on the session."""
        self.ended = time.perf_counter() if ended is None else ended
        state = self.state
        if state is None:
            return
        self.captured = (result, output, error, end, first_token_at)
        if state.defer(self._record_captured):
            background.schedule(state)

    def defer_outcome(self, result: Any, error: BaseException | None, ended: float) -> None:
        """Queue the record of a non-streamed call that ended at ``ended`` (a call resolved
        after it returned, see ``pending``)."""
        self._defer(result=result, error=error, ended=ended)

    def _record_captured(self) -> None:
        """The deferred record (on the recorder thread, or wherever the session is settled)."""
        captured, self.captured = self.captured, None
        if captured is None:
            return
        result, output, error, end, first_token_at = captured
        try:
            if result is not None:
                output = self._output_of(result)
            self._record(output=output, error=error, end=end, first_token_at=first_token_at)
        except Exception as exc:
            guard.report("a call", exc)

    def _output_of(self, result: Any) -> CallOutput:
        if self.raw is not None:
            return self.endpoint.read_response(wrap_json(json.loads(result.http_response.content)))
        return self.endpoint.read_response(result)

    # -- recording ----------------------------------------------------------------------

    def _prices(self) -> PriceBook:
        return self.config.prices or default_price_book()

    def _facts(
        self, *, end: str | None = None, first_token_at: float | None = None, hidden: bool = False
    ) -> CallFacts:
        """Facts of the app's call, or (``hidden``) of the current hidden round alone."""
        now = self.ended if self.ended is not None and not hidden else time.perf_counter()
        since = self.round_started if hidden else self.started
        return CallFacts(
            provider=self.config.spec.name,
            kind=self.endpoint.kind,
            request=self.request,
            stream=self.stream,
            latency_ms=(now - since) * 1000.0,
            ttft_ms=(first_token_at - since) * 1000.0 if first_token_at is not None else None,
            end=end,
            extra_fields=self.hidden_fields if hidden else self.extra_fields,
        )

    def _record(
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
        self._merge_metadata(state)
        facts = self._facts(end=end, first_token_at=first_token_at)
        events = record_call(state, facts, self._prices(), output=output, error=error)
        if self.trace is not None:
            try:
                emit_call(
                    self.trace,
                    state,
                    events,
                    self._prices(),
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
