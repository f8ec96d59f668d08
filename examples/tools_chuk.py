"""An agent loop whose tools run through chuk-tool-processor, every execution in the session.

The app: a wrapped ``AsyncOpenAI`` asks for tools; a chuk ``ToolProcessor`` runs them:

* ``factorize``, CPU-bound, in a worker process (the engine's ``SubprocessStrategy``);
* ``city_population``, from an MCP server over stdio (``examples/tools_mcp_server.py``,
  which this script starts itself, through the engine's ``setup_mcp_stdio``).

One processor holds both: its strategy sends each call to the subprocess pool or runs
it in process (the engine's strategies are pluggable; ``ByTool`` below is twenty lines).
``sessionware.wrap(processor)`` is the one added line for the tools, as
``sessionware.wrap(client)`` is for the model: every execution becomes a ``TOOL_CALL``
event of the conversation's session, linked to the model's tool call by its id, with
arguments, result, timing and attempts. The script ends with ``sessionware show``.

Offline by default: the model is an in-process stand-in for the OpenAI API
(``sessionware.adapters.fakes.FakeOpenAI``); with ``OPENAI_API_KEY`` set it is the real one.

    python examples/tools_chuk.py [path/to/tools.db]
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
from chuk_tool_processor import InProcessStrategy, SubprocessStrategy, ToolProcessor, setup_mcp_stdio
from chuk_tool_processor.registry import ToolRegistryProvider

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.cli import main as sessionware_cli

MODEL = "gpt-4o-mini"
SERVER = Path(__file__).with_name("tools_mcp_server.py")


class Factorize:
    """The prime factors of a positive integer (run in a worker process)."""

    async def execute(self, n: int) -> dict[str, Any]:
        factors, rest, p = [], int(n), 2
        while p * p <= rest:
            while rest % p == 0:
                factors.append(p)
                rest //= p
            p += 1
        if rest > 1:
            factors.append(rest)
        return {"n": n, "factors": factors, "pid": os.getpid()}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "factorize",
            "description": "The prime factors of a positive integer",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "city_population",
            "description": "The population of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
]


class ByTool(InProcessStrategy):
    """Run the tools named in ``isolated`` in worker processes, the rest in process; the
    results in the order of the calls, each with its call id."""

    def __init__(self, registry: Any, isolated: set[str]) -> None:
        super().__init__(registry, default_timeout=30)
        self.isolated = isolated
        self.pool = SubprocessStrategy(registry, max_workers=2, default_timeout=30)

    async def run(self, calls: list[Any], timeout: float | None = None, **kwargs: Any) -> list[Any]:
        async def one(call: Any) -> Any:
            if call.tool not in self.isolated:
                return (await InProcessStrategy.run(self, [call], timeout))[0]
            [result] = await self.pool.run([call], timeout)
            result.call_id = call.id  # the subprocess strategy leaves it out
            return result

        return list(await asyncio.gather(*(one(call) for call in calls)))

    async def shutdown(self) -> None:
        await self.pool.shutdown()
        await super().shutdown()


def offline_model(body: Any) -> Reply:
    """A scripted model: asks for both tools at once, then answers from their results."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text="Lisbon has about 545,000 inhabitants; 1517 = 37 x 41.")
    return Reply(tool_calls=[("factorize", {"n": 1517}), ("city_population", {"city": "Lisbon"})])


def make_client() -> openai.AsyncOpenAI:
    if os.environ.get("OPENAI_API_KEY"):
        return openai.AsyncOpenAI()
    api = FakeOpenAI(offline_model)
    return openai.AsyncOpenAI(
        api_key="offline-demo", http_client=httpx.AsyncClient(transport=api.transport())
    )


async def make_processor() -> tuple[ToolProcessor, Any]:
    """The app's processor: the MCP server's tools and ``factorize``, in one registry."""
    _, streams = await setup_mcp_stdio(
        servers=[{"name": "cities", "command": sys.executable, "args": [str(SERVER)]}],
        namespace="cities",
        initialization_timeout=30,
    )
    registry = await ToolRegistryProvider.get_registry()  # where setup_mcp_stdio put the MCP tools
    await registry.register_tool(Factorize(), name="factorize")
    processor = ToolProcessor(
        registry=registry, strategy=ByTool(registry, {"factorize"}), enable_retries=False
    )
    return processor, streams


def as_text(result: Any) -> str:
    """A tool result as the text of a tool message (an MCP result carries content parts)."""
    if result.error is not None:
        return f"error: {result.error}"
    value = result.result
    if hasattr(value, "content"):
        return "".join(part.get("text", "") for part in value.content if isinstance(part, dict))
    return json.dumps(value)


async def agent(client: openai.AsyncOpenAI, processor: ToolProcessor) -> str:
    """The app's loop, unchanged by sessionware: ask, run the tools asked for, answer."""
    messages: list[Any] = [
        {"role": "system", "content": "You answer with the tools you are given."},
        {"role": "user", "content": "How many people live in Lisbon, and what are the factors of 1517?"},
    ]
    while True:
        reply = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for result in await processor.process(messages[-1]):
            messages.append({"role": "tool", "tool_call_id": result.call_id, "content": as_text(result)})


async def main() -> None:
    db = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "tools_chuk.db"
    store = f"sqlite:///{db}"
    client = sessionware.wrap(make_client(), store=store)
    processor, streams = await make_processor()
    sessionware.wrap(processor, store=store)  # every tool execution, in the conversation's session
    try:
        answer = await agent(client, processor)
    finally:
        await processor.close()
        await streams.close()
    print(f"assistant: {answer}")

    session = sessionware.current_session()
    assert session is not None
    await session.aflush()
    for event in session.events():
        if event.type is sessionware.EventType.TOOL_CALL:
            print(
                f"  {event.tool_call_id} {event.tool_name}({json.dumps(event.tool_arguments)})"
                f" -> {json.dumps(event.tool_result)[:60]} in {event.latency_ms:.1f} ms"
            )
    stats = session.stats()
    print(f"llm_calls={stats.llm_calls} tool_calls={stats.tool_calls} errors={stats.errors}")
    print(f"(this script is process {os.getpid()}; factorize reports the worker it ran in)\n")
    sessionware_cli(["show", session.id, "--store", store, "--format", "table", "--max-chars", "160"])


if __name__ == "__main__":
    asyncio.run(main())
