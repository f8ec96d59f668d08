"""Extra rounds per 100 mixed calls: a memory call and an app call in one model message.

Managed mode serves the memory call, re-sends the round without the app's call (it was
not run: the API refuses calls without results), and hands the app's call over when the
model repeats it. This costs rounds; this script counts them, with a scripted model whose
second round, after the memory result, varies as a model's does (deterministically, by
question number):

* 50 %: repeats the app's call as it was;
* 20 %: calls the app's tool again with other arguments (what it recalled changed them);
* 20 %: answers at once (the recall made the tool unnecessary);
* 10 %: mixes again (another memory call beside the app's call): the app gets its call now.

Per 100 mixed calls: provider rounds beyond the response the app gets ("extra rounds"),
app calls the model wanted and the app never received, and calls handed to the app that
it cannot answer (memory calls; must be 0). Through the real ``openai`` SDK over a fake
transport, non-streamed and streamed, in one run.

    python benchmarks/managed_mixed_calls.py [--calls 100]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

MODEL = "gpt-4o-mini"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
MEMORY_TOOLS = {"page_fault", "search_pages"}


class MixedModel:
    """Round 0 of each question: ``search_pages`` and ``get_weather`` in one message."""

    def __init__(self) -> None:
        self.wanted_app_call = False

    def __call__(self, body: Mapping[str, Any]) -> Any:
        from sessionware.adapters.fakes import Reply

        messages = body["messages"]
        last = messages[-1]
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        n = int(question.split()[1].rstrip(":"))
        if last["role"] == "user":
            self.wanted_app_call = True
            return Reply(
                tool_calls=[("search_pages", {"query": f"item {n}"}), ("get_weather", {"city": "Oslo"})]
            )
        if last["role"] == "tool" and last["content"].startswith(("{", "[")):  # a memory result
            variant = n % 10
            if variant < 5:
                return Reply(tool_calls=[("get_weather", {"city": "Oslo"})])
            if variant < 7:
                return Reply(tool_calls=[("get_weather", {"city": f"Oslo {n}"})])
            if variant < 9:
                self.wanted_app_call = False
                return Reply(text=f"Answer {n}, from memory.")
            return Reply(tool_calls=[("page_fault", {"page_id": "msg_1"}), ("get_weather", {"city": "Oslo"})])
        return Reply(text=f"Answer {n}: sunny.")


def run(calls: int, *, stream: bool) -> dict[str, float]:
    import httpx
    import openai

    import sessionware
    from sessionware.adapters.fakes import FakeOpenAI
    from sessionware.core.memory import ContextPolicy
    from sessionware.core.store import MemoryBackend, Store

    model = MixedModel()
    api = FakeOpenAI(model)
    client = sessionware.wrap(
        openai.OpenAI(api_key="bench", max_retries=0, http_client=httpx.Client(transport=api.transport())),
        store=Store(MemoryBackend()),
        session_id="mixed",
        mode="managed",
        context=ContextPolicy(budget=3000),
    )
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    extra = lost = unanswerable = 0
    for n in range(calls):
        history.append({"role": "user", "content": f"Question {n}: what about item {n} and the weather?"})
        before = len(api.requests)
        names, call_ids, text = _ask(client, history, stream=stream)
        extra += len(api.requests) - before - 1
        unanswerable += sum(1 for name in names if name in MEMORY_TOOLS)
        if model.wanted_app_call and "get_weather" not in names:
            lost += 1
        if names:
            calls_json = [
                {"id": i, "type": "function", "function": {"name": name, "arguments": "{}"}}
                for i, name in zip(call_ids, names, strict=True)
            ]
            history.append({"role": "assistant", "content": None, "tool_calls": calls_json})
            history += [{"role": "tool", "tool_call_id": i, "content": "sunny"} for i in call_ids]
            _, _, text = _ask(client, history, stream=stream)
        history.append({"role": "assistant", "content": text})
    scale = 100 / calls
    return {"extra": extra * scale, "lost": lost * scale, "unanswerable": unanswerable * scale}


def _ask(client: Any, history: list[dict[str, Any]], *, stream: bool) -> tuple[list[str], list[str], str]:
    if not stream:
        message = (
            client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER]).choices[0].message
        )
        calls = message.tool_calls or []
        return [c.function.name for c in calls], [c.id for c in calls], message.content or ""
    names: list[str] = []
    ids: list[str] = []
    text = ""
    for chunk in client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or ():
            if call.id:
                ids.append(call.id)
                names.append(call.function.name)
    return names, ids, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    print(f"\nmixed memory + app calls, per 100 ({args.calls} run each way)")
    print(f"  {'':<10} {'extra rounds':>13} {'app calls lost':>15} {'calls the app cannot answer':>28}")
    verdicts = []
    for stream in (False, True):
        r = run(args.calls, stream=stream)
        label = "streamed" if stream else "whole"
        print(f"  {label:<10} {r['extra']:>13.0f} {r['lost']:>15.0f} {r['unanswerable']:>28.0f}")
        verdicts.append((f"no call the app cannot answer ({label})", r["unanswerable"] == 0))
        verdicts.append((f"no app call lost when the model repeats it ({label})", r["lost"] == 0))
    print(json.dumps({"model": "scripted: 50% repeat, 20% new arguments, 20% answer, 10% mix again"}))
    print("\nbars")
    for label, ok in verdicts:
        print(f"  [{'pass' if ok else 'FAIL'}] {label}")


if __name__ == "__main__":
    main()
