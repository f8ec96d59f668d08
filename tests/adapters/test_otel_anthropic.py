"""OpenTelemetry export of Anthropic calls through the real ``anthropic`` SDK (HTTP layer
answered by ``FakeAnthropic``): sync, async and streamed calls are one GenAI span each
with Anthropic's cache reads and writes; managed mode's hidden rounds are child spans
with their memory calls under them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from adapter_support import make_anthropic, session_events
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sessionware
from sessionware import ContextPolicy
from sessionware.adapters.engine.background import settle
from sessionware.adapters.fakes import FakeAnthropic, Reply
from sessionware.core.store import Store
from sessionware.core.telemetry import OtelSettings

MODEL = "claude-haiku-4-5"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _cached(body: Mapping[str, Any]) -> Reply:
    return Reply(text="Sunny in Oslo.", cached_tokens=30, cache_write_tokens=12)


def _finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert settle()
    return list(exporter.get_finished_spans())


def _wrapped(kind: str, store: Store, provider: TracerProvider, script: Any = _cached, **kwargs: Any) -> Any:
    client = make_anthropic(kind, FakeAnthropic(script))
    return sessionware.wrap(client, store=store, otel=OtelSettings(tracer_provider=provider), **kwargs)


ASK = [{"role": "user", "content": "Weather in Oslo?"}]


def test_sync_and_async_calls_are_client_spans_with_cache_reads_and_writes(spans: Any, store: Store) -> None:
    provider, exporter = spans
    sync = _wrapped("Anthropic", store, provider, session_id="a-sync")
    sync.messages.create(model=MODEL, max_tokens=100, messages=ASK)
    aclient = _wrapped("AsyncAnthropic", store, provider, session_id="a-async")
    asyncio.run(aclient.messages.create(model=MODEL, max_tokens=100, messages=ASK))

    found = sorted(_finished(exporter), key=lambda s: s.start_time or 0)
    assert [s.attributes["gen_ai.conversation.id"] for s in found] == ["a-sync", "a-async"]
    for span, session_id in zip(found, ("a-sync", "a-async"), strict=True):
        a = span.attributes
        recorded = [e for e in session_events(store, session_id) if e.usage is not None][-1]
        assert span.kind is trace.SpanKind.CLIENT and span.name == f"chat {MODEL}"
        assert a["gen_ai.provider.name"] == "anthropic"
        assert a["gen_ai.usage.input_tokens"] == recorded.usage.input_tokens
        assert a["gen_ai.usage.cache_read.input_tokens"] == 30
        assert a["gen_ai.usage.cache_creation.input_tokens"] == 12
        assert a["sessionware.cost.usd"] == pytest.approx(float(recorded.cost))
        assert a["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_a_stream_span_ends_with_the_stream_read_closed_or_left_in_a_with_block(
    spans: Any, store: Store
) -> None:
    provider, exporter = spans
    client = _wrapped("Anthropic", store, provider, session_id="a-stream")
    for _ in client.messages.create(model=MODEL, max_tokens=100, messages=ASK, stream=True):
        pass
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ASK) as stream:
        next(iter(stream.text_stream))
        assert len(_finished(exporter)) == 1  # still open while the app reads
    read, left = _finished(exporter)
    assert read.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert read.attributes["gen_ai.usage.cache_read.input_tokens"] == 30
    assert left.attributes["gen_ai.conversation.id"] == "a-stream"
    assert left.end_time >= read.end_time


async def _astream(client: Any) -> None:
    stream = await client.messages.create(model=MODEL, max_tokens=100, messages=ASK, stream=True)
    async for _ in stream:
        pass


def test_an_async_stream_is_one_span_too(spans: Any, store: Store) -> None:
    provider, exporter = spans
    asyncio.run(_astream(_wrapped("AsyncAnthropic", store, provider, session_id="a-astream")))
    (span,) = _finished(exporter)
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 12
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0


def _searching(body: Mapping[str, Any]) -> Reply:
    last = body["messages"][-1]
    content = last.get("content")
    if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
        return Reply(text="Locker B-317.")
    names = [t.get("name") for t in body.get("tools") or ()]
    if "key" in str(content) and "search_pages" in names:
        return Reply(tool_calls=[("search_pages", {"query": "shed key"})])
    return Reply(text="Noted.")


@pytest.mark.parametrize("kind", ["Anthropic", "AsyncAnthropic"])
def test_managed_hidden_rounds_are_child_spans_with_their_memory_calls(
    spans: Any, store: Store, kind: str
) -> None:
    provider, exporter = spans
    client = _wrapped(
        kind,
        store,
        provider,
        _searching,
        session_id="a-m",
        mode="managed",
        context=ContextPolicy(budget=2000),
    )
    history = [{"role": "user", "content": "The shed key is in locker B-317."}]

    async def both() -> None:
        for _ in range(2):
            reply = client.messages.create(model=MODEL, max_tokens=100, messages=history)
            reply = await reply if kind == "AsyncAnthropic" else reply
            history.append({"role": "assistant", "content": reply.content[0].text})
            history.append({"role": "user", "content": "Where is the key?"})

    asyncio.run(both())
    found = _finished(exporter)
    calls = [s for s in found if s.parent is None]
    assert len(calls) == 2
    last = calls[-1]
    (hidden,) = [s for s in found if s.parent is not None and s.parent.span_id == last.context.span_id]
    assert hidden.attributes["sessionware.hidden"] is True
    assert hidden.attributes["gen_ai.provider.name"] == "anthropic"
    memory = [s for s in found if s.parent is not None and s.parent.span_id == hidden.context.span_id]
    assert [m.attributes["sessionware.memory.tool"] for m in memory] == ["search_pages"]
    assert last.attributes["sessionware.app_input_tokens"] > 0
    assert last.start_time <= hidden.start_time and hidden.end_time <= last.end_time
