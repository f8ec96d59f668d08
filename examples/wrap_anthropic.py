"""An Anthropic app made session-aware: ``sessionware.wrap(AsyncAnthropic(...))``.

Two support conversations run concurrently as asyncio tasks, each inside its own
``sessionware.session(...)`` scope, so each is recorded into its own named session with
its metadata; one uses ``messages.stream()``, the other a tool round trip. Prompt-cache
reads and writes are recorded as Anthropic reports them.

Offline by default (an in-process stand-in for the Anthropic API,
``sessionware.adapters.fakes.FakeAnthropic``); with ``ANTHROPIC_API_KEY`` set it talks
to the real API.

    python examples/wrap_anthropic.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import anthropic
import httpx2

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, Reply

MODEL = "claude-haiku-4-5-20251001"
POLICY = [
    {
        "type": "text",
        "text": "Refund policy: 30 days, receipt required. " * 40,
        "cache_control": {"type": "ephemeral"},
    }
]
ORDER_TOOL = {
    "name": "order_status",
    "description": "Status of an order",
    "input_schema": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
}


def offline_model(body: Any) -> Reply:
    last = body["messages"][-1]["content"]
    if isinstance(last, list) and last and last[0].get("type") == "tool_result":
        return Reply(text=f"Your order is {last[0]['content']}.", cached_tokens=300)
    if "order" in str(last):
        return Reply(
            text="Let me look that up.",
            tool_calls=[("order_status", {"order": "A-1001"})],
            cache_write_tokens=300,
        )
    return Reply(text="Yes: within 30 days, with the receipt.", cached_tokens=300)


def make_client() -> anthropic.AsyncAnthropic:
    if os.environ.get("ANTHROPIC_API_KEY"):
        return anthropic.AsyncAnthropic()
    api = FakeAnthropic(offline_model)
    return anthropic.AsyncAnthropic(
        api_key="offline-demo", http_client=httpx2.AsyncClient(transport=api.transport())
    )


async def refund_question(client: anthropic.AsyncAnthropic) -> None:
    async with (
        sessionware.session("ticket-17", customer="ana", channel="chat"),
        client.messages.stream(
            model=MODEL,
            max_tokens=300,
            system=POLICY,
            messages=[{"role": "user", "content": "Can I return shoes I bought last week?"}],
        ) as stream,
    ):
        text = await stream.get_final_text()
    print(f"[ticket-17] {text}")


async def order_question(client: anthropic.AsyncAnthropic) -> None:
    async with sessionware.session("ticket-18", customer="ben", channel="email"):
        messages: list[Any] = [{"role": "user", "content": "Where is my order A-1001?"}]
        reply = await client.messages.create(
            model=MODEL, max_tokens=300, system=POLICY, tools=[ORDER_TOOL], messages=messages
        )
        messages.append({"role": "assistant", "content": reply.content})
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": "shipped yesterday"}
            for block in reply.content
            if block.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})
        reply = await client.messages.create(
            model=MODEL, max_tokens=300, system=POLICY, tools=[ORDER_TOOL], messages=messages
        )
    print(f"[ticket-18] {reply.content[0].text}")


async def main() -> None:
    store = sessionware.open_store("memory://")
    client = sessionware.wrap(make_client(), store=store)

    await asyncio.gather(refund_question(client), order_question(client))

    for info in await store.alist_sessions():
        stats = sessionware.SessionStats.from_infos([info])
        print(
            f"{info.id} {info.metadata}: {stats.llm_calls} calls, {stats.tool_calls} tool results, "
            f"input {stats.input_tokens} tokens (cache read {stats.cache_read_tokens}, "
            f"written {stats.cache_write_tokens}), output {stats.output_tokens}, ${stats.cost:.6f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
