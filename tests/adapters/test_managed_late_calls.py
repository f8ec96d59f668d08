"""A memory call that comes after the app already read text is served, and the stream goes on.

The scripted model says a long preamble (past ``stream_holdback_chars``, so the app reads it
live), then calls ``search_pages``; after the recall it answers with the code. The app
reads one stream: the preamble, then the answer, one finish and one usage.
"""

from __future__ import annotations

from typing import Any

import pytest
from adapter_support import ANTHROPIC_KINDS, OPENAI_KINDS, session_events
from managed_support import CODE, App, RecallModel

from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

CASES = [
    *((kind, "chat") for kind in OPENAI_KINDS),
    *((kind, "responses") for kind in ("OpenAI", "AsyncOpenAI")),
    *((kind, "messages") for kind in ANTHROPIC_KINDS),
]
LONG = "A long answer that keeps going. " * 12
ANSWER = f"The code is {CODE}."


def _ends(endpoint: str, items: list[Any]) -> dict[str, int]:
    """How many starts, finishes and usages the app read."""
    if endpoint == "chat":
        return {
            "starts": sum(1 for c in items if c.choices and c.choices[0].delta.role),
            "finishes": sum(1 for c in items if c.choices and c.choices[0].finish_reason),
            "usages": sum(1 for c in items if c.usage is not None),
        }
    if endpoint == "responses":
        return {
            "starts": sum(1 for e in items if e.type == "response.created"),
            "finishes": sum(1 for e in items if e.type == "response.completed"),
            "usages": sum(1 for e in items if e.type == "response.completed" and e.response.usage),
        }
    return {
        "starts": sum(1 for e in items if e.type == "message_start"),
        "finishes": sum(1 for e in items if e.type == "message_stop"),
        "usages": sum(1 for e in items if e.type == "message_delta" and e.usage is not None),
    }


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_a_late_memory_call_is_served_and_the_stream_goes_on(
    kind: str, endpoint: str, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(preamble=LONG), store)
    await app.converse(30)
    sent_before = len(app.api.requests)
    extra = {"stream_options": {"include_usage": True}} if endpoint == "chat" else {}

    seen = await app.probe(stream=True, **extra)

    assert (seen.text, seen.calls) == (LONG + ANSWER, [])
    assert _ends(endpoint, seen.items) == {"starts": 1, "finishes": 1, "usages": 1}
    assert len(app.api.requests) - sent_before == 2
    events = session_events(store, "s")
    [hidden] = [e for e in events[-4:] if e.hidden and e.type is EventType.LLM_CALL]
    assert [c.name for c in hidden.tool_calls] == ["search_pages"] and hidden.usage is not None
    final = events[-1]
    assert (final.role, final.content, final.tool_calls) == (Role.ASSISTANT, LONG + ANSWER, ())
    assert final.metadata["managed"]["hidden_rounds"] == 1
    assert final.ttft_ms is not None and final.ttft_ms < final.latency_ms
    if endpoint == "responses":
        [done] = [e for e in seen.items if e.type == "response.completed"]
        assert done.response.output_text == LONG + ANSWER  # every round's items in the final response
    if endpoint == "messages":
        indices = [e.index for e in seen.items if e.type == "content_block_start"]
        assert indices == list(range(len(indices)))

    # The next call of the conversation threads on: what the app read is what was recorded.
    app.history.append({"role": "assistant", "content": seen.text})
    app.history.append({"role": "user", "content": "Thanks, noted."})
    await app.ask()
    assert not any(e.type is EventType.BRANCH for e in session_events(store, "s"))


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "endpoint"), [("OpenAI", "chat"), ("AsyncAnthropic", "messages")])
async def test_the_stream_helpers_read_the_continued_stream_as_one_message(
    kind: str, endpoint: str, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(preamble=LONG), store)
    await app.converse(20)
    app.history.append({"role": "user", "content": "Do you remember the locker code for Maya?"})
    if endpoint == "chat":
        with app.client.chat.completions.stream(model="gpt-4o-mini", messages=app.history) as stream:
            for _ in stream:
                pass
        final = stream.get_final_completion()
        assert final.choices[0].message.content == LONG + ANSWER
        assert final.choices[0].message.role == "assistant"
        assert final.choices[0].finish_reason == "stop"
    else:
        async with app.client.messages.stream(
            model="claude-haiku-4-5", max_tokens=300, messages=app.history
        ) as stream:
            message = await stream.get_final_message()
        assert "".join(b.text for b in message.content if b.type == "text") == LONG + ANSWER
        assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0


@pytest.mark.slow
async def test_an_app_call_shown_before_a_late_memory_call_keeps_the_round(store: Store) -> None:
    """The app was shown its own call: the round is the app's as it is, the memory call
    taken out of it (and served for the turn's later rounds)."""
    app = App("OpenAI", "chat", RecallModel(preamble=LONG, app_tool="get_weather", app_first=True), store)
    await app.converse(20)

    seen = await app.probe(stream=True, tools=[{"type": "function", "function": {"name": "get_weather"}}])

    assert seen.text == LONG and seen.calls == ["get_weather"]
    finishes = [c.choices[0].finish_reason for c in seen.items if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    faults = [e.tool_name for e in session_events(store, "s") if e.type is EventType.PAGE_FAULT]
    assert faults == ["search_pages"]
