"""A wrapped client's session learns from the tools the app runs itself: the model's tool
calls and the app's tool messages teach procedural memory, with no tool runner involved."""

from __future__ import annotations

import json
from typing import Any

from adapter_support import make_openai

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.store import Store
from sessionware.core.tools import ledger_for


async def test_an_error_then_fix_of_an_app_tool_becomes_a_hint(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)
    openai_api.push(
        Reply(tool_calls=[("get_weather", {"city": "Pariss"})]),
        Reply(tool_calls=[("get_weather", {"city": "Paris"})]),
        Reply(text="21 °C in Paris."),
    )
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    for answer in ("Error: unknown city 'Pariss'", json.dumps({"temp_c": 21}), None):
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=history)
        message = reply.choices[0].message.model_dump(exclude_none=True)
        history.append(message)
        if answer is not None:  # the app runs its own get_weather and sends the result back
            history.append(
                {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": answer}
            )

    handle = sessionware.current_session()
    assert handle is not None
    memory = ledger_for(handle.state).memory
    assert memory.fix_for("get_weather", "ToolError").describe() == 'change city "Pariss" -> "Paris"'
    assert memory.stats().total_calls == 2
