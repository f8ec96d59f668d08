"""With Logfire (``logfire.instrument_openai``) on the same client as ``otel=True``, each
call's tokens are on one span only, whichever was instrumented first. Each case runs in a
process of its own: Logfire configures the global tracer provider and patches classes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from sessionware.adapters.instrument.class_hooks import HOOK_MARK
from sessionware.adapters.otel.trace import instrumented_inside

_RUN = """
import json, sys, httpx, openai, logfire, sessionware
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sessionware.adapters.engine.background import settle
from sessionware.adapters.fakes import FakeOpenAI, Reply

exporter = InMemorySpanExporter()
keep_ours = logfire.ScrubbingOptions(
    callback=lambda m: m.value if str(m.path[-1]).startswith("sessionware.") else None
)
logfire.configure(
    send_to_logfire=False, console=False, scrubbing=keep_ours,
    additional_span_processors=[SimpleSpanProcessor(exporter)],
)
api = FakeOpenAI(lambda body: Reply(text="Sunny.", cached_tokens=4))
client = openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=api.transport()))
order = sys.argv[1]
if order == "logfire-first":  # the usual set-up: Logfire for the whole process, then wrap
    logfire.instrument_openai()
    sessionware.wrap(client, session_id="lf-1", store="memory://", otel=True)
elif order == "instrument-after-logfire":
    logfire.instrument_openai()
    sessionware.instrument(session_id="lf-1", store="memory://", providers=["openai"], otel=True)
else:  # sessionware first: Logfire's hook goes around ours and silences nested spans
    sessionware.wrap(client, session_id="lf-1", store="memory://", otel=True)
    logfire.instrument_openai(client)
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
settle()
recorded = sessionware.current_session().stats()
print(json.dumps({
    "calls": recorded.llm_calls,
    "spans": [
        {"scope": s.instrumentation_scope.name, "attributes": dict(s.attributes)}
        for s in exporter.get_finished_spans()
    ],
}, default=str))
"""


def _run(order: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _RUN, order], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("order", ["logfire-first", "instrument-after-logfire"])
def test_logfire_inside_our_hook_keeps_the_tokens_and_ours_the_session(order: str) -> None:
    found = _run(order)
    assert found["calls"] == 1  # recorded in the store all the same
    ours = [s for s in found["spans"] if s["scope"] == "sessionware"]
    theirs = [s for s in found["spans"] if s["scope"].startswith("logfire")]
    assert len(ours) == 1 and len(theirs) == 1
    reported = [s for s in found["spans"] if "gen_ai.usage.input_tokens" in s["attributes"]]
    assert reported == theirs  # the tokens are on one span only
    mine = ours[0]["attributes"]
    assert mine["sessionware.usage_reported_elsewhere"] is True
    assert mine["gen_ai.conversation.id"] == "lf-1"
    assert "sessionware.cost.usd" not in mine
    assert float(mine["sessionware.cache.saved.usd"]) > 0  # kept by the scrubbing callback


def test_logfire_around_our_hook_silences_our_span_and_the_call_is_recorded() -> None:
    found = _run("sessionware-first")
    assert found["calls"] == 1
    assert [s["scope"] for s in found["spans"]] == ["logfire.openai"]


def test_our_own_class_hooks_do_not_count_as_another_instrumentation() -> None:
    def hook() -> None: ...

    hook.__wrapped__ = print  # type: ignore[attr-defined]
    assert instrumented_inside(hook)
    setattr(hook, HOOK_MARK, True)
    assert not instrumented_inside(hook)
