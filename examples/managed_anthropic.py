"""Managed mode on an async Anthropic app that streams with ``messages.stream()``.

The app keeps a support conversation and re-sends all of it on every turn. Wrapped in
managed mode with a 1,500-token budget, each request carries the system prompt, the
memory block (with a pinned rule from ``ContextPolicy.pinned``) and the recent turns.
When the model needs an older detail it calls ``search_pages``; the wrapper serves it
in a hidden round and the app's stream (and ``get_final_message()``) only ever shows
the final answer.

Offline by default (``FakeAnthropic``, a scripted model that answers only from what it
receives); with ``ANTHROPIC_API_KEY`` set it talks to the real API.

    python examples/managed_anthropic.py
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import anthropic
import httpx2

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, Reply

MODEL = "claude-haiku-4-5"
SYSTEM = "You are the support assistant of a bike shop."
PINNED = "Always give order numbers in full."
ORDER = re.compile(r"order (\d{6})")


def offline_model(body: Any) -> Reply:
    """Answers from what it receives; recalls with ``search_pages`` when it must."""
    last = body["messages"][-1]["content"]
    if isinstance(last, list) and last and last[0].get("type") == "tool_result":
        found = ORDER.search(str(last[0]["content"]))
        return Reply(text=f"Your wheel is order {found.group(1)}." if found else "I could not find it.")
    # The user's words are the last text block (recalled turns may come before it).
    blocks = [last] if isinstance(last, str) else [b.get("text", "") for b in last if b.get("type") == "text"]
    question = blocks[-1] if blocks else ""
    if "purchase" in question and "?" in question:
        found = ORDER.search(json.dumps(body["messages"]))
        if found:
            return Reply(text=f"Your wheel is order {found.group(1)}.")
        if any(t.get("name") == "search_pages" for t in body.get("tools", [])):
            # No word of the question is in the stored turns, so the builder could not
            # recall the fact for it; the model knows a purchase here is a wheel order.
            return Reply(text="Let me check.", tool_calls=[("search_pages", {"query": "wheel order"})])
    return Reply(text="Noted, thanks.")


def make_client() -> anthropic.AsyncAnthropic:
    if os.environ.get("ANTHROPIC_API_KEY"):
        return anthropic.AsyncAnthropic()
    api = FakeAnthropic(offline_model)
    return anthropic.AsyncAnthropic(
        api_key="offline", http_client=httpx2.AsyncClient(transport=api.transport())
    )


async def support_chat(client: anthropic.AsyncAnthropic) -> None:
    """The app as it was: a growing list, re-sent in full, the last answer streamed."""
    messages: list[dict[str, Any]] = []
    for i in range(120):
        text = (
            "I ordered a rear wheel, it is order 482913."
            if i == 2
            else f"Question {i}: does the shop service gear {i % 9} on a city bike within a week?"
        )
        messages.append({"role": "user", "content": text})
        reply = await client.messages.create(model=MODEL, max_tokens=300, system=SYSTEM, messages=messages)
        messages.append({"role": "assistant", "content": reply.content[0].text})
    messages.append({"role": "user", "content": "What was the number of my purchase?"})
    async with client.messages.stream(
        model=MODEL, max_tokens=300, system=SYSTEM, messages=messages
    ) as stream:
        print("assistant: ", end="")
        async for text in stream.text_stream:
            print(text, end="")
        final = await stream.get_final_message()
    print()
    assert not [b for b in final.content if b.type == "tool_use"]  # the memory call stayed hidden


async def main() -> None:
    policy = sessionware.ContextPolicy(budget=1500, pinned=[PINNED])
    client = sessionware.wrap(make_client(), mode="managed", context=policy, session_id="support-7")
    await support_chat(client)
    session = sessionware.current_session()
    assert session is not None
    stats = session.stats()
    print(
        f"{stats.llm_calls} calls ({stats.page_faults} memory call served in a hidden round); "
        f"the app asked to send {stats.app_input_tokens:,} input tokens, "
        f"{stats.managed_input_tokens:,} were sent"
    )


if __name__ == "__main__":
    asyncio.run(main())
