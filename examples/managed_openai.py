"""Managed mode: a chat app that keeps re-sending its whole history, kept inside 2,000 tokens.

The app is an ordinary ``openai`` chat loop that appends every turn to its message list
and sends all of it each time. ``sessionware.wrap(..., mode="managed")`` is the only
change: the model receives the system prompt, a memory block (summaries of older turns)
and the recent turns, within the budget, and can recall anything older with the
``search_pages`` / ``page_fault`` tools, which the wrapper serves itself. The app's own
list is never touched and it never sees a memory call, streamed or not.

Offline by default: a scripted model (``FakeOpenAI``) that answers only from what it is
sent, and calls ``search_pages`` when asked about something it cannot see. With
``OPENAI_API_KEY`` set it talks to the real API.

    python examples/managed_openai.py
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
import openai

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply

MODEL = "gpt-4o-mini"
SYSTEM = "You are a concise assistant helping plan a community garden."


def offline_model(body: Any) -> Reply:
    """Answers from what it receives; recalls with ``search_pages`` when it must."""
    messages = body["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        found = re.search(r"shed key is in locker ([A-Z]-\d{3})", last["content"])
        return Reply(text=f"The shed key is in locker {found.group(1)}." if found else "I could not find it.")
    question = str(last.get("content", ""))
    if "tool hut" in question and question.endswith("?"):
        found = re.search(r"shed key is in locker ([A-Z]-\d{3})", json.dumps(messages))
        if found:
            return Reply(text=f"The shed key is in locker {found.group(1)}.")
        if any(t["function"]["name"] == "search_pages" for t in body.get("tools", [])):
            # The user's words match nothing stored, so the builder could not recall the
            # fact for them; the model knows the hut is the shed and searches for that.
            return Reply(tool_calls=[("search_pages", {"query": "shed key"})])
    return Reply(text=f"Good idea. ({question[:40]})")


def make_client() -> openai.OpenAI:
    if os.environ.get("OPENAI_API_KEY"):
        return openai.OpenAI()
    api = FakeOpenAI(offline_model)
    return openai.OpenAI(api_key="offline-demo", http_client=httpx.Client(transport=api.transport()))


def chat_app(client: openai.OpenAI, turns: int) -> list[dict[str, Any]]:
    """The app as it was: a growing list, re-sent in full on every call."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for i in range(turns):
        text = (
            "For the record: the shed key is in locker B-317."
            if i == 5
            else f"Week {i}: the seed tray for bed {i % 12} is in locker C-{i:03}; "
            f"water it every {i % 4 + 1} days."
        )
        messages.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model=MODEL, messages=messages)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    messages.append({"role": "user", "content": "Where do I pick up what opens our tool hut?"})
    print("assistant: ", end="")
    for chunk in client.chat.completions.create(model=MODEL, messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="")
        assert not (chunk.choices and chunk.choices[0].delta.tool_calls)  # never a memory call
    print()
    return messages


def main() -> None:
    client = sessionware.wrap(
        make_client(), mode="managed", context=sessionware.ContextPolicy(budget=2000), session_id="garden"
    )
    messages = chat_app(client, turns=150)

    session = sessionware.current_session()
    assert session is not None
    stats = session.stats()
    events = session.events()
    last = next(e for e in reversed(events) if e.app_input_tokens is not None)
    managed = last.metadata["managed"]
    print(
        f"the app's list: {len(messages)} messages; its last call asked for {last.app_input_tokens:,} tokens"
    )
    print(
        f"sent instead: {managed['built_tokens']:,} tokens (budget {managed['budget']:,}), "
        f"{managed['hidden_rounds']} hidden round(s), {managed['memory_calls']} memory call(s)"
    )
    print(
        f"session: app asked {stats.app_input_tokens:,} input tokens, {stats.managed_input_tokens:,} sent "
        f"({stats.tokens_saved:,} saved); hidden rounds {stats.hidden_input_tokens:,} tokens, "
        f"${stats.hidden_cost:.6f}; page faults {stats.page_faults}"
    )


if __name__ == "__main__":
    main()
