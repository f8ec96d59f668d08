"""The core demo: track a conversation with a tool call, save it to SQLite, reload it.

Runs offline: the "model" is scripted, usage is what a provider would report.

    python examples/core_demo.py [path/to/demo.db]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from sessionware import SessionManager, TokenUsage
from sessionware.core.store import open_store


async def record(db_url: str) -> str:
    sm = SessionManager(store=db_url, system_prompt="You are a concise travel assistant.")
    await sm.user_says("What's the weather in Lisbon tomorrow?")
    await sm.ai_responds(
        None,
        model="gpt-4o-mini-2024-07-18",
        tool_calls=[{"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'}}],
        usage=TokenUsage(input_tokens=412, output_tokens=18),
        finish_reason="tool_calls",
    )
    forecast = {"forecast": "sunny", "high_c": 24}
    await sm.tool_used("get_weather", {"city": "Lisbon"}, forecast, call_id="call_1")
    await sm.ai_responds(
        "Sunny in Lisbon tomorrow, with a high of 24 °C.",
        model="gpt-4o-mini-2024-07-18",
        usage=TokenUsage(input_tokens=461, output_tokens=15, cache_read_tokens=384),
        finish_reason="stop",
    )
    await sm.user_says("Thanks! Pack an umbrella anyway?")
    await sm.ai_responds("No need: no rain is forecast.", model="claude-3-5-haiku-20241022")
    await sm.flush()
    return sm.session_id


async def reload(db_path: Path, session_id: str) -> None:
    # A fresh store object on the same file: nothing is shared with the writer above.
    from sessionware.core.store.sqlite import SQLiteBackend
    from sessionware.core.store.store import Store

    store = Store(SQLiteBackend(db_path))
    sm = await SessionManager.load(session_id, store=store)
    print(f"reloaded session {session_id} from {db_path}")
    for message in await sm.get_messages_for_llm():
        body = message.get("content") or message.get("tool_calls")
        print(f"  {message['role']:>9}: {body}")
    stats = await sm.get_stats()
    print(
        f"messages={stats.total_messages} tool_calls={stats.tool_calls} llm_calls={stats.llm_calls}\n"
        f"tokens in={stats.input_tokens} (cached {stats.cache_read_tokens}) out={stats.output_tokens}"
        f" [{stats.token_source.value}]\n"
        f"cost=${stats.cost:.6f} over models {stats.models}"
    )
    store.close()


def main() -> None:
    db_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "demo.db"
    url = f"sqlite:///{db_path}"
    session_id = asyncio.run(record(url))
    open_store(url).close()
    asyncio.run(reload(db_path, session_id))


if __name__ == "__main__":
    main()
