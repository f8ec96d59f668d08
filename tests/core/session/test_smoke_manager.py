"""First end-to-end checks of the facade on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from sessionware import SessionManager, TokenSource, TokenUsage
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend


async def test_conversation_survives_a_reload_from_sqlite(sqlite_path: Path) -> None:
    writer = Store(SQLiteBackend(sqlite_path))
    sm = SessionManager(store=writer, system_prompt="Be brief.")
    await sm.user_says("hello")
    await sm.ai_responds("hi", model="gpt-4o", usage=TokenUsage(input_tokens=10, output_tokens=2))
    writer.close()

    reader = Store(SQLiteBackend(sqlite_path))
    again = await SessionManager.load(sm.session_id, store=reader)
    assert await again.get_messages_for_llm() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
    ]
    stats = await again.get_stats()
    assert (stats.input_tokens, stats.output_tokens, stats.token_source) == (10, 2, TokenSource.PROVIDER)
    assert stats.cost > 0
    reader.close()
