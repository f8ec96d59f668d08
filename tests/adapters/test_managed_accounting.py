"""Managed mode's books: what the app asked to send against what was sent, hidden rounds
and summaries apart, prompt-cache reads, and sessions carried across modes and stores."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from adapter_support import make_anthropic, make_openai, session_events
from managed_support import CODE, QUESTION, SYSTEM, RecallModel, aask, ask, user_text

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.adapters.summarizer import ClientSummarizer
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.memory import ContextPolicy
from sessionware.core.memory.vm import CHECKPOINT_PAGE, VirtualMemory
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.stats import SessionStats
from sessionware.core.store import Store, open_store


def stats_of(store: Store, session_id: str = "s") -> SessionStats:
    session_events(store, session_id)  # settled and flushed
    return SessionStats.from_infos([store.load(session_id)])


def chat(turns: int, client: Any, history: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    history = history if history is not None else []
    start = sum(1 for m in history if m["role"] == "user")
    for i in range(start, start + turns):
        history.append({"role": "user", "content": user_text(i)})
        history.append({"role": "assistant", "content": ask(client, "chat", history).text})
    return history


def managed(
    api: FakeOpenAI, store: Store, *, kind: str = "OpenAI", context: ContextPolicy | None = None
) -> Any:
    """A managed client of ``kind`` on ``api``, recording session "s" (budget 900 unless given)."""
    return sessionware.wrap(
        make_openai(kind, api),
        store=store,
        session_id="s",
        mode="managed",
        context=context or ContextPolicy(budget=900),
    )


@pytest.mark.slow
def test_dual_accounting_adds_up_per_call_and_per_session(store: Store) -> None:
    api = FakeOpenAI(RecallModel())
    client = managed(api, store)
    history = chat(40, client)
    history.append({"role": "user", "content": QUESTION})
    assert ask(client, "chat", history).text == f"The code is {CODE}."

    events = session_events(store, "s")
    finals = [e for e in events if e.app_input_tokens is not None]
    hidden = [e for e in events if e.hidden]
    counter = counter_for_model("gpt-4o-mini")
    # Per call: what the app asked for is the exact count of its own request.
    app_asked = [m for m in history if m["role"] == "user"]
    for event, question in zip(finals, app_asked, strict=True):
        upto = history[: history.index(question) + 1]
        assert event.app_input_tokens == counter.count_messages(
            [{"role": "system", "content": SYSTEM}, *upto]
        )
    # Per session: the totals are the sums of those calls, and the saving is their difference.
    stats = stats_of(store)
    assert stats.app_input_tokens == sum(e.app_input_tokens or 0 for e in finals)
    assert stats.managed_input_tokens == sum(e.usage.input_tokens for e in finals if e.usage)
    assert stats.hidden_input_tokens == sum(e.usage.input_tokens for e in hidden if e.usage) > 0
    assert stats.input_tokens == stats.managed_input_tokens + stats.hidden_input_tokens
    assert stats.hidden_cost == sum((e.cost or Decimal(0)) for e in hidden) > 0
    assert stats.tokens_saved == stats.app_input_tokens - stats.managed_input_tokens > 0
    assert stats.page_faults == 1


@pytest.mark.slow
def test_a_session_that_switches_modes_keeps_every_event_and_counts_savings_of_managed_calls(
    store: Store,
) -> None:
    api = FakeOpenAI(RecallModel())
    client = sessionware.wrap(make_openai("OpenAI", api), store=store, session_id="s")
    history = chat(10, client)  # observe: sent as built
    sessionware.wrap(client, store=store, session_id="s", mode="managed", context=ContextPolicy(budget=600))
    history = chat(30, client, history)
    sent_managed = api.requests[-1]
    sessionware.wrap(client, store=store, session_id="s")  # and back
    history = chat(5, client, history)

    events = session_events(store, "s")
    recorded = [(e.role.value if e.role else "", e.content) for e in events if e.type is EventType.MESSAGE]
    assert recorded == [(m["role"], m["content"]) for m in history]  # nothing lost, nothing twice
    assert len(sent_managed["messages"]) < len(history) - 10  # managed mode sent a budgeted context
    assert re.search(r"S \(\w+, t0-", json.dumps(sent_managed))  # the observed turns, summarised
    assert api.requests[-1]["messages"][1:] == history[:-1]  # observe again: the list as the app built it
    stats = stats_of(store)
    managed_calls = [e for e in events if e.app_input_tokens is not None]
    assert len(managed_calls) == 30
    assert stats.tokens_saved == stats.app_input_tokens - stats.managed_input_tokens > 0


@pytest.mark.slow
def test_managed_mode_picks_up_a_session_recorded_by_an_earlier_process(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    earlier = open_store(url)
    client = sessionware.wrap(make_openai("OpenAI", FakeOpenAI(RecallModel())), store=earlier, session_id="s")
    history = chat(40, client)
    earlier.close()

    later = open_store(url)
    api = FakeOpenAI(RecallModel())
    client = managed(api, later)
    history.append({"role": "user", "content": QUESTION})
    seen = ask(client, "chat", history)

    assert seen.text == f"The code is {CODE}."  # recalled from turns the new process never saw
    first = json.dumps(api.requests[0])
    assert re.search(r"S \(\w+, t0-", first) and "Turn 12:" not in first  # from the stored history
    events = session_events(later, "s")
    assert sum(1 for e in events if e.type is EventType.MESSAGE) == len(history) + 1
    later.close()


def prefix_cached(inner: Any) -> Any:
    """A provider prompt cache: the leading messages a request shares with the one
    before are reported as cache reads (as OpenAI and Anthropic do, in tokens)."""
    previous: list[str] = []
    counter = counter_for_model("gpt-4o-mini")

    def script(body: Mapping[str, Any]) -> Reply:
        nonlocal previous
        system = body.get("system")  # Anthropic's system blocks open the cached prefix
        parts = ([{"role": "system", "content": system}] if system else []) + list(body["messages"])
        messages = [json.dumps(m, sort_keys=True) for m in parts]
        same = 0
        while same < min(len(messages), len(previous)) and messages[same] == previous[same]:
            same += 1
        previous = messages
        reply: Reply = inner(body)
        reply.cached_tokens = counter.count_messages(parts[:same]) - 3 if same else 0
        return reply

    return script


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["chat", "messages"])
def test_cache_reads_the_provider_reports_show_in_the_session_stats(endpoint: str, store: Store) -> None:
    if endpoint == "chat":
        api: Any = FakeOpenAI(prefix_cached(RecallModel()))
        client = make_openai("OpenAI", api)
    else:
        api = FakeAnthropic(prefix_cached(RecallModel()))
        client = make_anthropic("Anthropic", api)
    sessionware.wrap(client, store=store, session_id="s", mode="managed", context=ContextPolicy(budget=1500))
    history: list[dict[str, Any]] = []
    for i in range(60):
        history.append({"role": "user", "content": user_text(i)})
        history.append({"role": "assistant", "content": ask(client, endpoint, history).text})

    stats = stats_of(store)
    assert stats.cache_read_tokens > 0.25 * stats.input_tokens
    calls = [e for e in session_events(store, "s") if e.usage]
    reads = [e.usage.cache_read_tokens for e in calls if e.usage]
    assert sum(1 for r in reads if r) >= 0.75 * len(reads)  # all but the first call and compactions
    # Between compactions every call reads at least the previous call's system prompt,
    # memory block and window turns from the cache: the recall region comes after them.
    counter = counter_for_model("gpt-4o-mini")
    versions = [e.metadata["managed"]["prefix_version"] for e in calls]
    for i in range(1, len(calls)):
        if versions[i] == versions[i - 1]:
            assert reads[i] >= counter.count_messages(_before_recall(api.requests[i - 1])) - 3
    # ... which sits right before the question (each call here opens a user turn).
    assert sum("<VM:RECALL>" in json.dumps(b["messages"][-2:]) for b in api.requests) >= len(calls) // 2


def _before_recall(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The messages of ``body`` before its recall region (before its latest turn without one)."""
    system = body.get("system")
    parts = ([{"role": "system", "content": system}] if system else []) + list(body["messages"])
    for i, message in enumerate(parts):
        if "<VM:RECALL>" in json.dumps(message.get("content")):
            return parts[:i]
    return parts[:-1]


def summarizing_model(body: Mapping[str, Any]) -> Reply:
    system = body.get("system") or (body.get("messages") or [{}])[0].get("content")
    if isinstance(system, str) and system.startswith("Summarise these earlier turns"):
        return Reply(text="SUMMARY-BY-MODEL of the garden planning.")
    return RecallModel()(body)


@pytest.mark.slow
async def test_summaries_written_through_a_client_are_recorded_as_hidden_cost(store: Store) -> None:
    summaries = FakeOpenAI(summarizing_model)
    summarize = ClientSummarizer(make_openai("AsyncOpenAI", summaries), model="gpt-4o-mini")
    api = FakeOpenAI(summarizing_model)
    client = managed(
        api, store, kind="AsyncOpenAI", context=ContextPolicy(budget=900, summarize_fn=summarize)
    )
    history: list[dict[str, Any]] = []
    for i in range(60):
        history.append({"role": "user", "content": user_text(i)})
        history.append({"role": "assistant", "content": (await aask(client, "chat", history)).text})

    assert summaries.requests  # the summariser's own client did the work
    assert "SUMMARY-BY-MODEL" in json.dumps(api.requests[-1])
    events = session_events(store, "s")
    summary_calls = [e for e in events if e.metadata.get("purpose") == "summary"]
    assert summary_calls and all(e.hidden and e.cost and e.cost > 0 for e in summary_calls)
    assert stats_of(store).hidden_cost >= sum((e.cost or Decimal(0)) for e in summary_calls)
    assert [e.role for e in events if e.type is EventType.MESSAGE][-1] is Role.ASSISTANT


@pytest.mark.slow
def test_a_sync_client_uses_a_sync_summariser_inline(store: Store) -> None:
    summaries = FakeOpenAI(summarizing_model)
    api = FakeOpenAI(summarizing_model)
    policy = ContextPolicy(
        budget=900, summarize_fn=ClientSummarizer(make_openai("OpenAI", summaries), model="gpt-4o-mini")
    )
    client = managed(api, store, context=policy)

    chat(60, client)

    assert summaries.requests and "SUMMARY-BY-MODEL" in json.dumps(api.requests[-1])
    assert any(e.metadata.get("purpose") == "summary" for e in session_events(store, "s"))


@pytest.mark.slow
def test_a_new_process_counts_a_long_stored_history_as_the_process_that_recorded_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's tokens of a long history a new process meets are read from the pages its
    memory restored (the same counter on the same text): the exact count all the same."""
    url = f"sqlite:///{tmp_path / 'long.db'}"
    history: list[dict[str, Any]] = []
    for i in range(150):
        history.append({"role": "user", "content": user_text(i)})
        if i % 10 == 0:
            call = {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            history.append({"role": "assistant", "content": None, "tool_calls": [call]})
            history.append({"role": "tool", "tool_call_id": f"call_{i}", "content": f"result {i}"})
        history.append({"role": "assistant", "content": f"Answer {i}.", "name": "helper" if i == 7 else None})
        history[-1] = {k: v for k, v in history[-1].items() if v is not None}
    counter = counter_for_model("gpt-4o-mini")

    def managed_call(store: Store, question: str) -> int:
        api = FakeOpenAI(lambda body: Reply(text="Noted."))
        client = managed(api, store)
        history.append({"role": "user", "content": question})
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "system", "content": SYSTEM}, *history]
        )
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        calls = [e for e in session_events(store, "s") if e.app_input_tokens is not None]
        return calls[-1].app_input_tokens or 0

    first = open_store(url)
    managed_call(first, "What was the first thing I asked?")
    first.flush()
    assert CHECKPOINT_PAGE in first.load_pages("s")  # what the new process restores
    first.close()
    read: list[int | None] = []
    real = VirtualMemory.text_tokens

    def spy(self: VirtualMemory, seqs: list[int]) -> list[int | None]:
        read.extend(real(self, seqs))
        return read[-len(seqs) :]

    monkeypatch.setattr(VirtualMemory, "text_tokens", spy)
    second = open_store(url)  # a new process: nothing of the session in memory
    asked = managed_call(second, "And the last thing?")
    second.close()
    assert asked == counter.count_messages([{"role": "system", "content": SYSTEM}, *history[:-1]])
    assert sum(1 for tokens in read if tokens is not None) >= 290  # plain messages: from their pages
