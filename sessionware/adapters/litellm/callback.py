"""LiteLLM: every ``completion`` / ``acompletion`` recorded by a callback.

>>> import litellm
>>> from sessionware.adapters.litellm import SessionCallback
>>> litellm.callbacks = [SessionCallback(store="sqlite:///sessions.db")]  # doctest: +SKIP

From then on each chat call (sync or async, streamed or not, answered, tool-calling or
failed) is recorded like a wrapped client's: the request's new messages, the answer
and its tool calls, usage, latency, errors. The session is, in this order, the call's
``metadata={"session_id": ...}`` (or LiteLLM's own ``litellm_session_id``), the
callback's ``session_id``, the surrounding ``sessionware.session(...)`` scope, or the
conversation's fingerprint (its system prompt and first user message).

On OpenAI's own API each call also gets the session's ``prompt_cache_key`` (unless the
app set one), as a wrapped client's calls do: see ``sessionware.adapters.litellm.cache_key``.

Cost: the event's ``cost`` comes from sessionware's ``PriceBook``; LiteLLM's own
``response_cost`` is kept beside it in ``metadata["litellm_cost"]``. When both exist and
disagree by more than 1 %, one warning per model says so. A model only LiteLLM can
price gets LiteLLM's figure, marked ``metadata["cost_source"] = "litellm"``.

Exactly once: the callback implements one event family, the final success and failure
events, in both twins because LiteLLM 1.x fires the sync twin for sync calls and the
async twin for async ones. Any event seen again for the same ``litellm_call_id``
(LiteLLM fires some twice) is dropped; a failure followed by a success of the same id
(a retry) records both. When LiteLLM sends a call through an OpenAI client that is
wrapped or instrumented by sessionware, that client lets the call pass through while a
``SessionCallback`` is registered, so the call is counted once, here.

Where the work happens: LiteLLM calls the callback after the call returned (on its
logging worker for async calls, its logging threads for sync ones); the callback only
claims the call, reads it and resolves the session there, then hands the record to the
recorder thread, as wrapped clients do. A read of the session records it first.

Managed mode: ``managed(...)`` (below) wraps ``litellm.completion`` / ``acompletion``,
since LiteLLM's SDK has no pre-call hook that can change messages. Its calls are
recorded by the managed funnel; this callback, if also registered, leaves them alone.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import uuid
from collections import OrderedDict
from decimal import Decimal
from functools import partial
from types import CodeType
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from sessionware.adapters.engine import background, funnel, guard
from sessionware.adapters.engine.pending import SessionLater
from sessionware.adapters.engine.record import CallFacts, record_call
from sessionware.adapters.engine.resolve import choose, merge_scope_metadata
from sessionware.adapters.litellm.cache_key import add_cache_key, named_session, sends_to_openai
from sessionware.adapters.litellm.handle import ManagedLiteLLM
from sessionware.adapters.litellm.read import (
    RECORDED_CALL_TYPES,
    LiteLLMCall,
    is_chunk,
    price_provider,
    read_call,
)
from sessionware.adapters.litellm.rounds import AsyncManagedStream, ManagedStream, is_managed_call
from sessionware.adapters.otel.trace import CallTrace, capture, emit_recorded, wall_ns
from sessionware.adapters.scope import SessionScope, active_scope
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.defaults import default_otel, default_price_book, default_store
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.session.models import EventFields
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store
from sessionware.core.store.url import StoreLike, open_store
from sessionware.core.telemetry import OtelSettings, otel_settings

__all__ = [
    "CALLBACK_LISTS",
    "AsyncManagedStream",
    "ManagedLiteLLM",
    "ManagedStream",
    "SessionCallback",
    "is_registered",
    "managed",
]

logger = logging.getLogger(__name__)

# Relative difference between LiteLLM's cost and ours above which a model is reported.
_COST_TOLERANCE = Decimal("0.01")
# How far up the stack a funnel call looks for LiteLLM's completion entry points.
_MAX_FRAMES = 96
#: LiteLLM's module-level lists a ``CustomLogger`` can be registered in.
CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


class _Seen:
    """Which ``litellm_call_id``s were recorded, and how (bounded, most recent kept)."""

    def __init__(self, limit: int = 16_384) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, call_id: str | None, *, failed: bool) -> bool:
        """True when this event of ``call_id`` is the one to record."""
        if call_id is None:
            return True
        with self._lock:
            recorded_failure = self._ids.get(call_id)
            if recorded_failure is None or (recorded_failure and not failed):
                self._ids[call_id] = failed
                self._ids.move_to_end(call_id)
                if len(self._ids) > self.limit:
                    self._ids.popitem(last=False)
                return True
            return False


# Shared by every callback, so two registered by mistake still record a call once.
_seen = _Seen()


class SessionCallback(CustomLogger):
    """A LiteLLM ``CustomLogger`` that records every chat call into a session.

    ``store`` is a URL, ``Store`` or backend (default: the process's default store at
    the time of each call); ``session_id`` records every call without a per-call
    ``metadata["session_id"]`` into that session; ``prices`` replaces the default
    ``PriceBook``; ``otel=True`` (or ``OtelSettings``) also exports each call as an
    OpenTelemetry GenAI span (``sessionware.adapters.otel``) under the span current where
    the app called LiteLLM (None: ``sessionware.configure(otel=...)`` decides).

    >>> callback = SessionCallback(session_id="support-42")
    >>> callback.session_id
    'support-42'
    """

    call_types: frozenset[str] = RECORDED_CALL_TYPES
    """LiteLLM ``call_type``s recorded: chat completions (the proxy's hook adds more)."""

    def __init__(
        self,
        *,
        store: StoreLike = None,
        session_id: str | None = None,
        prices: PriceBook | None = None,
        otel: bool | OtelSettings | None = None,
    ) -> None:
        super().__init__()
        if session_id is not None and (not isinstance(session_id, str) or not session_id.strip()):
            raise InvalidSessionOperation(
                "SessionCallback", f"session_id must be a non-empty string, got {session_id!r}"
            )
        self.store: Store | None = open_store(store) if store is not None else None
        self.session_id = session_id
        self.prices = prices
        self.otel = otel
        """OpenTelemetry export of the calls: settings, False (off), None (the process default)."""
        self.fallback_session_id = f"calls-{uuid.uuid4().hex[:16]}"
        """Where calls with no conversation to thread on go when nothing names a session."""
        self._disagreed: set[str] = set()
        funnel.add_outer_recorder(_inside_recorded_completion)

    # -- LiteLLM's events ------------------------------------------------------------

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """The request LiteLLM is about to send: on OpenAI's own API, give it the session's
        ``prompt_cache_key`` unless the app set one (see ``litellm.cache_key``)."""
        try:
            if not isinstance(kwargs, dict) or kwargs.get("call_type") not in RECORDED_CALL_TYPES:
                return
            params = kwargs.get("litellm_params") or {}
            additional = kwargs.get("additional_args") or {}
            body = additional.get("complete_input_dict")
            provider = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider")
            if not isinstance(body, dict) or not sends_to_openai(provider, additional.get("api_base")):
                return
            if is_managed_call(kwargs.get("litellm_call_id")):
                return  # managed mode's rounds carry the key of the session they build for
            metadata = params.get("metadata")
            named = named_session(
                metadata if isinstance(metadata, dict) else None,
                params.get("litellm_session_id"),
                self.session_id,
            )
            scope = active_scope()
            add_cache_key(body, named or (scope.id if scope is not None else None))
        except Exception as exc:
            guard.report("a LiteLLM call's prompt_cache_key", exc)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        call = self._claim(kwargs, response_obj, start_time, end_time, failed=False)
        if call is not None:
            self._capture(call)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        call = self._claim(kwargs, response_obj, start_time, end_time, failed=True)
        if call is not None:
            self._capture(call)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call = self._claim(kwargs, response_obj, start_time, end_time, failed=False)
        if call is not None:
            self._capture(call)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call = self._claim(kwargs, response_obj, start_time, end_time, failed=True)
        if call is not None:
            self._capture(call)

    # -- reading -----------------------------------------------------------------------

    def _claim(
        self, kwargs: Any, response: Any, start_time: Any, end_time: Any, *, failed: bool
    ) -> LiteLLMCall | None:
        """The call to record, or None (another call type, a repeat, a bare chunk)."""
        try:
            if not isinstance(kwargs, dict) or kwargs.get("call_type") not in self.call_types:
                return None
            if not failed and is_chunk(response) and not kwargs.get("complete_streaming_response"):
                return None
            call_id = kwargs.get("litellm_call_id") or None
            if is_managed_call(call_id):
                return None  # a round of managed mode, which records the call itself
            if not _seen.claim(call_id, failed=failed):
                return None
            return read_call(kwargs, response, start_time, end_time, failed=failed)
        except Exception as exc:
            guard.report("a LiteLLM call", exc)
            return None

    # -- the session -------------------------------------------------------------------

    def _store(self) -> Store:
        return self.store if self.store is not None else default_store()

    def _capture(self, call: LiteLLMCall) -> None:
        """Queue ``call`` on the store: its session is worked out, and its record deferred
        there, off LiteLLM's path (in call order, before anything reads the store)."""
        try:
            scope = active_scope()
            # LiteLLM runs callbacks in a copy of the calling code's context: the app's span.
            settings = default_otel() if self.otel is None else otel_settings(self.otel)
            trace = capture(settings) if settings is not None else None
            pending = SessionLater(self._store())
            pending.queue(partial(self._resolve, call, scope, pending, trace), scope)
        except Exception as exc:
            guard.report("a LiteLLM call", exc)

    def _resolve(
        self, call: LiteLLMCall, scope: SessionScope | None, pending: SessionLater, trace: CallTrace | None
    ) -> None:
        try:
            choice = choose(
                call.request,
                named=named_session(call.metadata, call.litellm_session_id, self.session_id),
                scope=scope,
                fallback=self.fallback_session_id,
            )
            registry = registry_for(pending.store)
            state = registry.cached(choice.session_id) or registry.open(
                choice.session_id, **choice.header(call.request)
            )
            merge_scope_metadata(state, choice.scope)
            pending.state = state
            self._defer(state, call, trace)
        except Exception as exc:
            guard.report("a LiteLLM call", exc)

    # -- recording ---------------------------------------------------------------------

    def _defer(self, state: SessionState, call: LiteLLMCall, trace: CallTrace | None = None) -> None:
        """Queue the record on the session for the recorder thread, as wrapped clients do:
        the event loop LiteLLM runs this on (or its logging thread) goes on at once, and
        anything that reads the session first records it."""
        if state.defer(partial(self._record_deferred, state, call, trace)):
            background.schedule(state)

    def _record_deferred(self, state: SessionState, call: LiteLLMCall, trace: CallTrace | None) -> None:
        try:
            self._record(state, call, trace)
        except Exception as exc:
            guard.report("a LiteLLM call", exc)

    def _record(self, state: SessionState, call: LiteLLMCall, trace: CallTrace | None = None) -> None:
        prices = self.prices or default_price_book()
        provider = price_provider(call.provider) or call.provider
        extra_fields: EventFields = {}
        output = call.output()
        if output is not None:
            if call.call_id:
                output.extra["litellm_call_id"] = call.call_id
            theirs = call.response_cost
            if theirs is not None:
                output.extra["litellm_cost"] = float(theirs)
            model = output.model or call.request.model
            ours = prices.cost(model, output.usage, provider) if output.usage is not None else None
            if ours is None and theirs is not None and output.usage is not None:
                extra_fields["cost"] = theirs
                output.extra["cost_source"] = "litellm"
            elif ours is not None and theirs is not None:
                self._cross_check(model, ours, theirs)
        facts = CallFacts(
            provider=provider,
            kind=call.kind,
            request=call.request,
            stream=call.stream,
            latency_ms=call.latency_ms,
            ttft_ms=call.ttft_ms,
            extra_fields=extra_fields,
        )
        events = record_call(state, facts, prices, output=output, error=call.error)
        if trace is not None:
            try:
                emit_recorded(
                    trace,
                    state,
                    events,
                    prices,
                    start_ns=wall_ns(call.start),
                    end_ns=wall_ns(call.end),
                    requested_model=call.request.model,
                )
            except Exception as exc:
                guard.report("the OpenTelemetry export", exc)
        if not _exit_drain_registered:
            _register_exit_drain()

    def _cross_check(self, model: str | None, ours: Decimal, theirs: Decimal) -> None:
        key = model or "?"
        if key in self._disagreed:
            return
        scale = max(ours, theirs)
        if scale == 0 or abs(ours - theirs) / scale <= _COST_TOLERANCE:
            return
        self._disagreed.add(key)
        logger.warning(
            "LiteLLM prices a %s call at $%s, sessionware's price data at $%s; both are recorded "
            "(metadata litellm_cost and cost); this is reported once per model",
            key,
            theirs,
            ours,
        )


def managed(
    *,
    budget: int | None = None,
    context: ContextPolicy | None = None,
    store: StoreLike = None,
    session_id: str | None = None,
    prices: PriceBook | None = None,
) -> ManagedLiteLLM:
    """LiteLLM chat calls in managed mode, as ``sessionware.wrap(..., mode="managed")``
    gives an OpenAI or Anthropic client.

    The app keeps sending its whole history; each call sends instead the context the
    session's virtual memory builds inside the budget (``budget`` tokens, or the whole
    ``context`` policy; by default the model's context window), with the memory tools
    ``page_fault`` / ``search_pages`` added to the app's tools. The model's memory calls
    are served and re-sent in hidden rounds: the app only ever gets an answer without
    them, streamed or not (see ``sessionware.adapters.managed``). Each call is recorded
    once, by managed mode, whether or not a ``SessionCallback`` is registered too.

    The session is the call's ``metadata={"session_id": ...}``, else ``session_id``,
    else a surrounding ``sessionware.session(...)``, else the conversation's fingerprint.
    ``store`` is a URL, ``Store`` or backend (default: the process's default store).

    Use the returned handle's ``completion`` / ``acompletion`` (LiteLLM's arguments and
    return types), or ``install()`` it so ``litellm.completion`` / ``acompletion``
    themselves are managed until ``uninstall()`` (or as a ``with`` block):

    >>> handle = managed(budget=4000, session_id="support-42")
    >>> handle.policy.budget, handle.session_id
    (4000, 'support-42')
    >>> with managed(budget=4000):  # doctest: +SKIP
    ...     reply = litellm.completion(model="gpt-4o-mini", messages=history)
    """
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise InvalidSessionOperation(
            "managed", f"budget must be a positive number of tokens, got {budget!r}"
        )
    if budget is not None and context is not None:
        raise InvalidSessionOperation("managed", "give the budget inside the ContextPolicy, not both")
    if session_id is not None and (not isinstance(session_id, str) or not session_id.strip()):
        raise InvalidSessionOperation("managed", f"session_id must be a non-empty string, got {session_id!r}")
    policy = context if context is not None else ContextPolicy(budget=budget)
    return ManagedLiteLLM(
        policy=policy,
        store=open_store(store) if store is not None else None,
        session_id=session_id,
        prices=prices,
    )


_exit_drain_registered = False
_EXIT_DRAIN_SECONDS = 10.0


def _register_exit_drain() -> None:
    """Have LiteLLM's pending async events run at exit while the stores are still open.

    LiteLLM runs the success events of a program's last async calls from an exit hook it
    registered when it was imported; exit hooks run last-registered first, so the store
    the first record opened (and registered its own flush-and-close hook for) would be
    closed by then. This hook, registered after that first record, runs before it.
    """
    global _exit_drain_registered
    _exit_drain_registered = True
    atexit.register(_drain_litellm)


def _drain_litellm() -> None:
    worker_module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    worker = getattr(worker_module, "GLOBAL_LOGGING_WORKER", None)
    if worker is None:
        return
    try:
        # LiteLLM's own exit routine, run before the stores close rather than after (it
        # empties the queue, so when LiteLLM's hook runs it finds nothing left to do).
        run_now = getattr(worker, "_flush_on_exit", None)
        if callable(run_now):
            run_now()
        else:
            asyncio.run(asyncio.wait_for(worker.flush(), _EXIT_DRAIN_SECONDS))
    except Exception as exc:
        logger.warning("LiteLLM's last events could not be recorded at exit: %r", exc)


def is_registered(litellm_module: Any = None) -> bool:
    """True while a ``SessionCallback`` is in LiteLLM's callback lists."""
    module = litellm_module if litellm_module is not None else sys.modules.get("litellm")
    if module is None:
        return False
    for name in CALLBACK_LISTS:
        for callback in getattr(module, name, None) or ():
            if isinstance(callback, SessionCallback):
                return True
    return False


_entry_codes: frozenset[CodeType] | None = None


def _completion_entry_codes() -> frozenset[CodeType]:
    """The code of ``litellm.completion`` and ``acompletion`` under their decorator."""
    global _entry_codes
    if _entry_codes is None:
        main = sys.modules.get("litellm.main")
        codes: set[CodeType] = set()
        for name in RECORDED_CALL_TYPES:
            function = getattr(main, name, None)
            inner = getattr(function, "__wrapped__", function)
            code = getattr(inner, "__code__", None)
            if isinstance(code, CodeType):
                codes.add(code)
        _entry_codes = frozenset(codes)
    return _entry_codes


def _inside_recorded_completion() -> bool:
    """True when the SDK call in progress was made by a LiteLLM chat call that a
    registered ``SessionCallback`` will record (checked from the SDK's request funnel).

    The frames of the caller's thread (or, for ``acompletion``, the chain of coroutines
    awaiting the request) lead back to LiteLLM's entry point, whichever way the app
    reached it (``litellm.completion``, an imported name, a ``Router``).
    """
    try:
        if not is_registered():
            return False
        codes = _completion_entry_codes()
        frame = sys._getframe(1)
        for _ in range(_MAX_FRAMES):
            if frame.f_code in codes:
                return True
            back = frame.f_back
            if back is None:
                return False
            frame = back
        return False
    except Exception as exc:
        guard.report("a LiteLLM call check", exc)
        return False
