"""Turning one recorded call into spans (see ``spans`` for what they hold).

On the app's path a traced call only keeps a reference to the OpenTelemetry context it
was made in (``CallTrace``, ~1 us); everything else happens when the call is recorded,
off that path. ``opentelemetry`` is imported on the first traced call, never at import.

Another instrumentation on the same client (OpenLLMetry, Logfire, OpenTelemetry's own
``openai-v2``) makes its own GenAI span of the SDK call, and sessionware's span would
then be a second span with the same tokens and cost: backends that add up
``gen_ai.usage.*`` would count the call twice. So sessionware's span carries no usage or
cost attributes (only the session, the cache saving and the managed-mode figures, under
``sessionware.*``) and is marked ``sessionware.usage_reported_elsewhere`` when

* the span current at the call is a recording GenAI span (the other instrumentation
  patched a method around the request funnel, as OpenLLMetry does); that span also gets
  ``gen_ai.conversation.id`` while it is still open; or
* the funnel method sessionware hooked is itself another instrumentation's wrapper
  (Logfire, instrumented before sessionware, patches the same method), whose span is
  made inside sessionware's hook (``instrumented_inside``).

Calls made under OpenTelemetry's suppression key (what instrumentations set to silence
nested ones: Logfire does around its span) make no span.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sessionware.adapters.otel.spans import SCHEMA_URL, call_attributes, memory_attributes, operation_of
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.session.enums import EventType
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.state import SessionState
from sessionware.core.telemetry import OtelSettings

__all__ = ["CallTrace", "capture", "emit_call", "emit_recorded", "instrumented_inside", "wall_ns"]

logger = logging.getLogger(__name__)

_USAGE_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "sessionware.cost.usd",
)
_GENAI_MARKERS = ("gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name", "llm.request.type")
_tracers: dict[int, Any] = {}


class CallTrace:
    """What a traced call keeps from the moment it was made."""

    __slots__ = ("context", "first_seq", "inside", "settings")

    def __init__(self, settings: OtelSettings, context: Any, *, inside: bool = False) -> None:
        self.settings = settings
        self.context = context
        self.inside = inside
        """Another instrumentation's span of this call is made inside ours (see the module doc)."""
        self.first_seq: int | None = None
        """The session's last ``seq`` before the call (for its hidden rounds and memory calls)."""

    def mark(self, state: SessionState) -> None:
        if self.first_seq is None:
            self.first_seq = state.events[-1].seq if state.events else 0


def capture(settings: OtelSettings, *, inside: bool = False) -> CallTrace | None:
    """The trace of a call starting now, or None when instrumentation is suppressed here.

    ``inside``: the hooked funnel is another instrumentation's wrapper (``instrumented_inside``).
    """
    from opentelemetry import context

    current = context.get_current()
    if current.get(_suppress_key()) or current.get(_SUPPRESS_LEGACY):
        return None
    return CallTrace(settings, current, inside=inside)


_OUR_HOOK = "__sessionware_hook__"  # instrument's class hooks (they record nothing twice)


def instrumented_inside(funnel: Any) -> bool:
    """Whether ``funnel``, the SDK method a hook of ours replaces, is another
    instrumentation's wrapper of it (``functools.wraps`` leaves ``__wrapped__``, and the
    SDKs' own funnels are undecorated), rather than the SDK's method or our class hook."""
    function = funnel.func if isinstance(funnel, partial) else getattr(funnel, "__func__", funnel)
    return getattr(function, "__wrapped__", None) is not None and not getattr(function, _OUR_HOOK, False)


# The keys OpenTelemetry's instrumentations use to silence instrumentation (the API's
# documented key, and the older string key the contrib packages also honour).
_SUPPRESS: Any = None
_SUPPRESS_LEGACY = "suppress_instrumentation"


def _suppress_key() -> Any:
    global _SUPPRESS
    if _SUPPRESS is None:
        try:
            from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

            _SUPPRESS = _SUPPRESS_INSTRUMENTATION_KEY
        except ImportError:  # an API without it: only the string key is honoured
            _SUPPRESS = _SUPPRESS_LEGACY
    return _SUPPRESS


def _tracer(settings: OtelSettings) -> Any:
    from opentelemetry import trace

    from sessionware._version import __version__

    provider = settings.tracer_provider
    key = id(provider)
    found = _tracers.get(key)
    if found is None or provider is None:
        # The global provider may be replaced by the app at any time: ask for it each time.
        found = trace.get_tracer("sessionware", __version__, tracer_provider=provider, schema_url=SCHEMA_URL)
        if provider is not None:
            _tracers[key] = found
    return found


def wall_ns(moment: Any) -> int:
    """A ``datetime`` (naive: local time, as LiteLLM reports them) as wall-clock
    nanoseconds; anything else is now."""
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1e9)
    return time.time_ns()


def _ns(event: SessionEvent) -> int:
    return int(event.timestamp.timestamp() * 1e9)


def _foreign_parent(context: Any) -> Any:
    """The current span when it is another instrumentation's GenAI span, else None."""
    from opentelemetry import trace

    span = trace.get_current_span(context)
    # Read when the call is recorded, maybe after that span ended: an SDK span keeps its
    # attributes (the API's non-recording spans have none).
    attributes = getattr(span, "attributes", None) or {}
    return span if any(k in attributes for k in _GENAI_MARKERS) else None


def emit_call(
    call: CallTrace,
    state: SessionState,
    events: Sequence[SessionEvent],
    prices: PriceBook,
    *,
    started: float,
    ended: float | None,
    requested_model: str | None = None,
) -> None:
    """Spans of one recorded call: the call, its hidden rounds and their memory calls.

    ``started`` / ``ended``: the call's ``time.perf_counter()`` readings (``ended`` None:
    now)."""
    now_perf, now_ns = time.perf_counter(), time.time_ns()
    start_ns = now_ns - int((now_perf - started) * 1e9)
    end_ns = now_ns - int((now_perf - (ended if ended is not None else now_perf)) * 1e9)
    emit_recorded(
        call, state, events, prices, start_ns=start_ns, end_ns=end_ns, requested_model=requested_model
    )


def emit_recorded(
    call: CallTrace,
    state: SessionState,
    events: Sequence[SessionEvent],
    prices: PriceBook,
    *,
    start_ns: int,
    end_ns: int,
    requested_model: str | None = None,
) -> None:
    """``emit_call`` with the call's start and end as wall-clock nanoseconds (for calls
    timed by someone else: LiteLLM reports datetimes)."""
    if not events:
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    final = events[-1]
    tracer = _tracer(call.settings)
    capture_content = call.settings.capture_content
    foreign = _foreign_parent(call.context)
    attrs = call_attributes(
        final,
        state.id,
        prices,
        requested_model=requested_model,
        inputs=[e for e in events[:-1] if e.type in (EventType.MESSAGE, EventType.TOOL_CALL)],
        system=state.info.system_prompt,
        capture_content=capture_content,
    )
    if foreign is not None or call.inside:
        for key in _USAGE_KEYS:
            attrs.pop(key, None)
        attrs["sessionware.usage_reported_elsewhere"] = True
        if foreign is not None and foreign.is_recording():
            foreign.set_attribute("gen_ai.conversation.id", state.id)
    model = attrs.get("gen_ai.request.model") or ""
    span = tracer.start_span(
        f"{attrs['gen_ai.operation.name']} {model}".strip(),
        context=call.context,
        kind=SpanKind.CLIENT,
        attributes=attrs,
        start_time=start_ns,
    )
    if final.error is not None:
        span.set_status(Status(StatusCode.ERROR, final.error.message[:500]))
    inner = trace.set_span_in_context(span, call.context)
    _children(tracer, inner, call, state, final, prices)
    span.end(end_time=max(end_ns, start_ns))


def _children(  # noqa: PLR0917 - one private call site
    tracer: Any, parent: Any, call: CallTrace, state: SessionState, final: SessionEvent, prices: PriceBook
) -> None:
    """Hidden rounds (with the memory calls each asked for) between the call's start and end."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    if call.first_seq is None:
        return
    between = [e for e in state.events if call.first_seq < e.seq < final.seq]
    pending: list[SessionEvent] = []
    for event in between:
        if event.type is EventType.PAGE_FAULT:
            pending.append(event)
        elif event.hidden and event.type is EventType.LLM_CALL:
            end = _ns(event)
            start = end - int((event.latency_ms or 0.0) * 1e6)
            attrs = call_attributes(event, state.id, prices, capture_content=False)
            span = tracer.start_span(
                f"{operation_of(event)} {event.model or ''}".strip(),
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attrs,
                start_time=start,
            )
            # The memory calls of a round are served after its answer, before the next
            # round: they belong to the round that asked for them.
            _memory(tracer, trace.set_span_in_context(span, parent), state, pending, call)
            pending = []
            span.end(end_time=end)
    _memory(tracer, parent, state, pending, call)


def _memory(
    tracer: Any, parent: Any, state: SessionState, faults: list[SessionEvent], call: CallTrace
) -> None:
    from opentelemetry.trace import SpanKind

    for event in faults:
        at = _ns(event)
        attrs = memory_attributes(event, state.id, capture_content=call.settings.capture_content)
        span = tracer.start_span(
            f"search_memory {event.tool_name or ''}".strip(),
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=at,
        )
        span.end(end_time=at)
