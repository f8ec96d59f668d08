"""OpenTelemetry export of LiteLLM calls recorded by ``SessionCallback`` (LiteLLM's real
API and its offline ``mock_response``): one GenAI span per call, sync, async and
streamed, under the app's span, with LiteLLM's own start and end times."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from litellm_support import await_calls, wait_for_calls
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionware.adapters.engine.background import settle
from sessionware.adapters.litellm import SessionCallback
from sessionware.adapters.litellm.proxy import ProxyHook
from sessionware.core.defaults import configure
from sessionware.core.store import Store
from sessionware.core.telemetry import OtelSettings

pytestmark = pytest.mark.usefixtures("no_internal_errors")

ASK = [{"role": "user", "content": "Capital of France?"}]


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert settle()
    return list(exporter.get_finished_spans())


def test_a_completion_is_one_span_under_the_apps_span(litellm: Any, store: Store, spans: Any) -> None:
    provider, exporter = spans
    litellm.callbacks = [
        SessionCallback(store=store, session_id="l-1", otel=OtelSettings(tracer_provider=provider))
    ]
    with provider.get_tracer("app").start_as_current_span("handle request") as parent:
        reply = litellm.completion(model="gpt-4o-mini", messages=ASK, mock_response="Paris")
    [events] = wait_for_calls(store, 1).values()

    (span,) = [s for s in _finished(exporter) if s.name != "handle request"]
    a = span.attributes
    assert span.kind is trace.SpanKind.CLIENT and span.name == "chat gpt-4o-mini"
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert a["gen_ai.conversation.id"] == "l-1"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert a["sessionware.cost.usd"] == pytest.approx(float(events[-1].cost))
    assert span.start_time < span.end_time
    assert (span.end_time - span.start_time) / 1e6 == pytest.approx(events[-1].latency_ms, abs=1.0)


def test_async_and_streamed_completions_and_failures_are_spans_too(
    litellm: Any, store: Store, spans: Any
) -> None:
    provider, exporter = spans
    litellm.callbacks = [
        SessionCallback(store=store, session_id="l-2", otel=OtelSettings(tracer_provider=provider))
    ]

    async def run() -> None:
        await litellm.acompletion(model="gpt-4o-mini", messages=ASK, mock_response="Paris")
        stream = await litellm.acompletion(
            model="gpt-4o-mini", messages=ASK, mock_response="Paris", stream=True
        )
        async for _ in stream:
            pass
        with pytest.raises(litellm.RateLimitError):
            await litellm.acompletion(
                model="gpt-4o-mini",
                messages=ASK,
                mock_response=litellm.RateLimitError("slow", "openai", "gpt-4o-mini"),
            )
        await await_calls(store, 3)

    asyncio.run(run())
    found = _finished(exporter)
    assert len(found) == 3
    assert all(s.attributes["gen_ai.conversation.id"] == "l-2" for s in found)
    streamed = [s for s in found if "gen_ai.response.time_to_first_chunk" in s.attributes]
    failed = [s for s in found if s.status.status_code is trace.StatusCode.ERROR]
    assert len(streamed) == 1 and len(failed) == 1
    assert failed[0].attributes["error.type"]


def test_the_process_default_turns_it_on(litellm: Any, store: Store, spans: Any) -> None:
    provider, exporter = spans
    configure(otel=OtelSettings(tracer_provider=provider))
    try:
        litellm.callbacks = [SessionCallback(store=store, session_id="l-3")]
        litellm.completion(model="gpt-4o-mini", messages=ASK, mock_response="Paris")
        wait_for_calls(store, 1)
    finally:
        configure(otel=False)
    assert len(_finished(exporter)) == 1


def test_a_callback_can_opt_out_of_the_process_default(litellm: Any, store: Store, spans: Any) -> None:
    provider, exporter = spans
    configure(otel=OtelSettings(tracer_provider=provider))
    try:
        litellm.callbacks = [SessionCallback(store=store, session_id="l-4", otel=False)]
        litellm.completion(model="gpt-4o-mini", messages=ASK, mock_response="Paris")
        wait_for_calls(store, 1)
    finally:
        configure(otel=False)
    assert _finished(exporter) == []


def test_the_proxy_hook_reads_sessionware_otel() -> None:
    assert ProxyHook.from_env({"SESSIONWARE_STORE": "memory://", "SESSIONWARE_OTEL": "1"}).otel is True
    assert ProxyHook.from_env({"SESSIONWARE_STORE": "memory://"}).otel is None
