"""OpenTelemetry export: one GenAI span per call through the real OpenAI SDK (HTTP layer
answered by ``FakeOpenAI``), to the SDK's in-memory exporter and over OTLP/HTTP to a
receiver the test starts; hidden rounds and memory calls as child spans; content off
unless asked; nothing twice under OpenLLMetry."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sessionware
from sessionware import ContextPolicy
from sessionware.adapters.engine.background import settle
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.defaults import configure
from sessionware.core.telemetry import OtelSettings

MODEL = "gpt-4o-mini"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _client(script=None, **wrap_kwargs):
    api = FakeOpenAI(script or (lambda body: Reply(text="Sunny.", cached_tokens=4, reasoning_tokens=2)))
    client = openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=api.transport()))
    return sessionware.wrap(client, **wrap_kwargs)


def _finished(exporter) -> list:
    settle()
    return list(exporter.get_finished_spans())


def test_a_call_is_one_client_span_with_the_session_usage_cache_and_cost(spans) -> None:
    provider, exporter = spans
    client = _client(session_id="weather-1", otel=OtelSettings(tracer_provider=provider))
    app_tracer = provider.get_tracer("app")

    with app_tracer.start_as_current_span("handle request") as parent:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Weather?"}])

    found = _finished(exporter)
    call = next(s for s in found if s.name == f"chat {MODEL}")
    a = call.attributes
    assert call.kind is trace.SpanKind.CLIENT
    assert call.parent.span_id == parent.get_span_context().span_id
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.conversation.id"] == "weather-1"
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["gen_ai.usage.reasoning.output_tokens"] == 2
    recorded = [e for e in client_events("weather-1") if e.usage is not None][-1]
    assert a["gen_ai.usage.input_tokens"] == recorded.usage.input_tokens
    assert a["sessionware.cost.usd"] == pytest.approx(float(recorded.cost))
    assert a["sessionware.cache.saved.usd"] > 0
    assert "gen_ai.input.messages" not in a  # content is off unless asked for
    assert call.start_time < call.end_time


def client_events(session_id: str):
    from sessionware.core.defaults import default_store

    return default_store().load(session_id).events


def test_content_is_exported_only_when_asked_for(spans) -> None:
    provider, exporter = spans
    client = _client(session_id="c-1", otel=OtelSettings(tracer_provider=provider, capture_content=True))
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    a = _finished(exporter)[-1].attributes
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    ]
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Sunny."
    assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]


def test_a_stream_span_ends_when_the_stream_ends_or_is_closed_unread(spans) -> None:
    provider, exporter = spans
    client = _client(session_id="s-1", otel=OtelSettings(tracer_provider=provider))
    for _ in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a"}], stream=True
    ):
        pass
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "b"}], stream=True
    )
    next(iter(stream))
    assert len(_finished(exporter)) == 1  # the abandoned stream is still open
    stream.close()
    read, closed = _finished(exporter)
    assert read.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert closed.attributes["gen_ai.conversation.id"] == "s-1"
    assert closed.end_time >= read.end_time


def _searching_model(body) -> Reply:
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return Reply(text="Locker B-317.")
    if "key" in str(messages[-1].get("content")) and any(
        t["function"]["name"] == "search_pages" for t in body.get("tools", [])
    ):
        return Reply(tool_calls=[("search_pages", {"query": "shed key"})])
    return Reply(text="Noted.")


def test_hidden_rounds_are_child_spans_with_their_memory_calls(spans) -> None:
    provider, exporter = spans
    client = _client(
        _searching_model,
        session_id="m-1",
        mode="managed",
        context=ContextPolicy(budget=2000),
        otel=OtelSettings(tracer_provider=provider),
    )
    history = [{"role": "user", "content": "The shed key is in locker B-317."}]
    client.chat.completions.create(model=MODEL, messages=history)
    history += [{"role": "assistant", "content": "Noted."}, {"role": "user", "content": "Where is the key?"}]
    client.chat.completions.create(model=MODEL, messages=history)

    found = _finished(exporter)
    calls = [s for s in found if s.parent is None]
    assert len(calls) == 2
    last = calls[-1]
    children = [s for s in found if s.parent is not None and s.parent.span_id == last.context.span_id]
    assert [c.attributes["gen_ai.operation.name"] for c in children] == ["chat"]
    hidden = children[0]
    assert hidden.attributes["sessionware.hidden"] is True
    memory = [s for s in found if s.parent is not None and s.parent.span_id == hidden.context.span_id]
    assert [m.attributes["gen_ai.operation.name"] for m in memory] == ["search_memory"]
    assert memory[0].attributes["sessionware.memory.tool"] == "search_pages"
    assert last.attributes["sessionware.app_input_tokens"] > 0
    assert last.start_time <= hidden.start_time and hidden.end_time <= last.end_time


def test_suppressed_instrumentation_and_opted_out_clients_make_no_span(spans) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    provider, exporter = spans
    client = _client(session_id="q-1", otel=OtelSettings(tracer_provider=provider))
    with suppress_instrumentation():
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert _finished(exporter) == []

    trace.set_tracer_provider(provider) if not isinstance(
        trace.get_tracer_provider(), TracerProvider
    ) else None
    configure(otel=True)
    try:
        _client(session_id="q-2", otel=False).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "y"}]
        )
        assert _finished(exporter) == []
    finally:
        configure(otel=False)


_UNDER_OPENLLMETRY = """
import json, httpx, openai, sessionware
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sessionware.adapters.engine.background import settle
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.telemetry import OtelSettings

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
OpenAIInstrumentor().instrument(tracer_provider=provider)
api = FakeOpenAI(lambda body: Reply(text="Sunny.", cached_tokens=4))
client = openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=api.transport()))
sessionware.wrap(client, session_id="o-1", otel=OtelSettings(tracer_provider=provider))
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
settle()
print(json.dumps([
    {"scope": s.instrumentation_scope.name, "id": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None, "attributes": dict(s.attributes)}
    for s in exporter.get_finished_spans()
], default=str))
"""


def test_under_openllmetry_the_usage_is_reported_once() -> None:
    # In a process of its own: OpenLLMetry patches the SDK's classes for good.
    out = subprocess.run(
        [sys.executable, "-c", _UNDER_OPENLLMETRY], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    ours = [s for s in found if s["scope"] == "sessionware"]
    theirs = [s for s in found if s["scope"] != "sessionware"]
    assert len(ours) == 1 and len(theirs) == 1
    assert ours[0]["parent"] == theirs[0]["id"]
    assert ours[0]["attributes"]["sessionware.usage_reported_elsewhere"] is True
    assert ours[0]["attributes"]["gen_ai.conversation.id"] == "o-1"
    reported = [s for s in found if "gen_ai.usage.input_tokens" in s["attributes"]]
    assert reported == theirs  # the tokens are on one span only


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_spans_reach_an_otlp_http_receiver() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.server_port}/v1/traces"))
    )
    try:
        client = _client(session_id="otlp-1", otel=OtelSettings(tracer_provider=provider))
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        settle()
        provider.force_flush()
    finally:
        provider.shutdown()
        server.shutdown()
        server.server_close()
    request = ExportTraceServiceRequest()
    request.ParseFromString(_Receiver.received[-1])
    scope = request.resource_spans[0].scope_spans[0]
    assert scope.scope.name == "sessionware"
    assert scope.schema_url.endswith("/1.37.0")
    span = scope.spans[0]
    attributes = {kv.key: kv.value for kv in span.attributes}
    assert span.name == f"chat {MODEL}"
    assert attributes["gen_ai.conversation.id"].string_value == "otlp-1"
    assert attributes["gen_ai.usage.cache_read.input_tokens"].int_value == 4


def test_importing_sessionware_does_not_import_opentelemetry() -> None:
    code = "import sys, sessionware; sessionware.wrap; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_instrument_and_run_turn_the_export_on_for_the_process() -> None:
    from sessionware.adapters.instrument.zero_code import OTEL_ENV, ZeroCodeSettings
    from sessionware.cli.run import child_environment
    from sessionware.core.defaults import default_otel

    env = child_environment({}, store=None, session=None, mode=None, budget=None, propagate=False, otel=True)
    assert env[OTEL_ENV] == "1"
    assert ZeroCodeSettings.from_environ(env, cwd="/srv").otel is True
    assert ZeroCodeSettings.from_environ({}, cwd="/srv").otel is False

    sessionware.instrument(store="memory://", providers=["openai"], otel=True)
    try:
        assert default_otel() == OtelSettings()
    finally:
        sessionware.uninstrument()
        configure(otel=False)
    assert default_otel() is None
