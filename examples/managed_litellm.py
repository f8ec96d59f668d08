"""Managed mode for a LiteLLM app: ``litellm.completion`` keeps a whole-history app inside 1,500 tokens.

The app is an ordinary LiteLLM chat loop: it appends every turn (LiteLLM's own reply
messages included) to one list and sends all of it with ``litellm.completion`` each time.
The only change is ``with managed(budget=1500):`` around it: while the block runs,
``litellm.completion`` / ``acompletion`` send the system prompt, a memory block and the
recent turns inside the budget, and serve the model's ``search_pages`` / ``page_fault``
calls themselves, so an evicted fact is recalled without the app seeing a memory call.

Offline by default: LiteLLM runs its real code down to an OpenAI client whose HTTP is a
scripted model (``FakeOpenAI``) that answers only from what it is sent. With
``OPENAI_API_KEY`` set it talks to the real API.

    python examples/managed_litellm.py
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's bundled price map, offline

import httpx
import litellm
import openai

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.adapters.litellm import managed

MODEL = "gpt-4o-mini"
SYSTEM = "You are a concise assistant for a bicycle repair shop."
TICKET = re.compile(r"wheel truing job is ticket (\d{6})")


def offline_model(body: Any) -> Reply:
    """Answers from what it receives; recalls with ``search_pages`` when it must."""
    messages = body["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        found = TICKET.search(last["content"])
        return Reply(
            text=f"Your wheel truing is ticket {found.group(1)}." if found else "I could not find it."
        )
    question = str(last.get("content", ""))
    if "rim" in question and question.endswith("?"):
        found = TICKET.search(json.dumps(messages))
        if found:
            return Reply(text=f"Your wheel truing is ticket {found.group(1)}.")
        if any(t["function"]["name"] == "search_pages" for t in body.get("tools", [])):
            # No word of the question is in the stored turns, so the builder could not
            # recall the fact for it; the model knows a rim fix is a wheel truing job.
            return Reply(tool_calls=[("search_pages", {"query": "wheel truing job ticket"})])
    return Reply(text=f"Got it. ({question[:36]})")


def client_options() -> dict[str, Any]:
    """What LiteLLM is given to reach the model: the real API, or the offline one."""
    if os.environ.get("OPENAI_API_KEY"):
        return {}
    api = FakeOpenAI(offline_model)
    return {
        "client": openai.OpenAI(api_key="offline-demo", http_client=httpx.Client(transport=api.transport()))
    }


def shop_app(turns: int, options: dict[str, Any]) -> list[Any]:
    """The app as it was: a growing list, re-sent in full with ``litellm.completion``."""
    messages: list[Any] = [{"role": "system", "content": SYSTEM}]
    for i in range(turns):
        text = (
            "Before I forget, about the job at the counter: my wheel truing job is ticket 582043."
            if i == 4
            else f"Day {i}: the chain job on bike {i % 9} is ticket {310000 + i * 7}; "
            f"it squeaked {i % 3 + 1} times this week."
        )
        messages.append({"role": "user", "content": text})
        reply = litellm.completion(model=MODEL, messages=messages, **options)
        messages.append(reply.choices[0].message)  # LiteLLM's Message object, as apps do
    messages.append({"role": "user", "content": "Which number is the rim fix under?"})
    print("assistant: ", end="")
    for chunk in litellm.completion(model=MODEL, messages=messages, stream=True, **options):
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None and delta.content:
            print(delta.content, end="")
        assert not (delta is not None and delta.tool_calls)  # never a memory call
    print()
    return messages


def main() -> None:
    with managed(budget=1500, session_id="repairs"):
        messages = shop_app(turns=120, options=client_options())

    session = sessionware.current_session()
    assert session is not None
    stats = session.stats()
    last = next(e for e in reversed(session.events()) if e.app_input_tokens is not None)
    info = last.metadata["managed"]
    print(
        f"the app's list: {len(messages)} messages; its last call asked for {last.app_input_tokens:,} tokens"
    )
    print(
        f"sent instead: {info['built_tokens']:,} tokens (budget {info['budget']:,}), "
        f"{info['hidden_rounds']} hidden round(s), {info['memory_calls']} memory call(s)"
    )
    print(
        f"session: {stats.llm_calls} calls, app asked {stats.app_input_tokens:,} input tokens, "
        f"{stats.managed_input_tokens:,} sent ({stats.tokens_saved:,} saved); page faults {stats.page_faults}"
    )


if __name__ == "__main__":
    main()
