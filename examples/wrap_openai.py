"""The main demo: an existing async OpenAI chat app, made session-aware by one line.

The app below is an ordinary chat loop with a tool, written against ``openai.AsyncOpenAI``.
``sessionware.wrap(client, store=...)`` is the only change: every call (plain, tool round
trip, streamed) is recorded into a SQLite file, one session per conversation, and the
script prints the session's messages and stats, then reads them back from the file.

Offline by default: the client talks to an in-process stand-in for the OpenAI API
(``sessionware.adapters.fakes.FakeOpenAI``) that answers in the API's exact shapes. With
``OPENAI_API_KEY`` set it talks to the real API instead.

    python examples/wrap_openai.py [path/to/demo.db]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import openai

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply

MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Today's weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "sunny", "high_c": 24}


def offline_model(body: Any) -> Reply:
    """A scripted model: asks for the weather tool, then answers from its result."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        weather = json.loads(last["content"])
        return Reply(
            text=f"It's {weather['sky']} in {weather['city']}, up to {weather['high_c']} °C.",
            cached_tokens=64,
        )
    if "weather" in str(last.get("content", "")).lower():
        return Reply(tool_calls=[("get_weather", {"city": "Lisbon"})])
    return Reply(text="Pack sunglasses and a light jacket for the evening.", cached_tokens=128)


def make_client() -> openai.AsyncOpenAI:
    if os.environ.get("OPENAI_API_KEY"):
        return openai.AsyncOpenAI()
    api = FakeOpenAI(offline_model)
    return openai.AsyncOpenAI(
        api_key="offline-demo", http_client=httpx.AsyncClient(transport=api.transport())
    )


async def chat_app(client: openai.AsyncOpenAI) -> None:
    """The app as it was before sessionware: nothing here knows about sessions."""
    messages: list[Any] = [
        {"role": "system", "content": "You are a concise travel assistant."},
        {"role": "user", "content": "What's the weather in Lisbon today?"},
    ]
    reply = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        result = get_weather(**json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    reply = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    print(f"assistant: {reply.choices[0].message.content}")
    messages.append({"role": "assistant", "content": reply.choices[0].message.content})

    messages.append({"role": "user", "content": "What should I pack?"})
    print("assistant (streamed): ", end="")
    answer = []
    stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    async for chunk in stream:
        piece = chunk.choices[0].delta.content or ""
        answer.append(piece)
        print(piece, end="", flush=True)
    print()


async def main() -> None:
    db = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "wrap_openai.db"
    client = sessionware.wrap(make_client(), store=f"sqlite:///{db}")

    await chat_app(client)

    session = sessionware.current_session()
    assert session is not None
    await session.aflush()
    print(f"\nrecorded session {session.id} in {db}")
    for message in session.messages():
        body = message.get("content") or message.get("tool_calls")
        print(f"  {message['role']:>9}: {body}")
    stats = session.stats()
    print(
        f"llm_calls={stats.llm_calls} messages={stats.total_messages} tool_calls={stats.tool_calls}\n"
        f"tokens in={stats.input_tokens} (cached {stats.cache_read_tokens}) out={stats.output_tokens}"
        f" [{stats.token_source.value}]\n"
        f"cost=${stats.cost:.6f} models={stats.models}"
    )

    # Another process would see the same: a fresh store on the same file.
    from sessionware.core.store.sqlite import SQLiteBackend

    reloaded = sessionware.Store(SQLiteBackend(db))
    info = reloaded.load(session.id)
    totals = info.totals
    print(f"reloaded from disk: {len(info.events)} events, {totals.llm_calls} calls, ${totals.cost:.6f}")
    reloaded.close()

    print(f"\nsee it from the command line: sessionware show {session.id} --store sqlite:///{db}")


if __name__ == "__main__":
    asyncio.run(main())
