"""One writer process of the many-writers tests and benchmark: records into a store, as
an app would, and prints one JSON line of what it did and what the store says.

    python writer_process.py manager STORE_URL SESSION NAME COUNT [--go FILE] [--batch N] [--acks]
                                     [--hold FILE]
    python writer_process.py wrapped STORE_URL SESSION NAME COUNT [--go FILE]
    python writer_process.py app NAME COUNT [--text PREFIX]   (run under ``sessionware run``)

``manager``: ``SessionManager.user_says`` COUNT times (content ``NAME i``), flushing every
``--batch`` records; with ``--acks`` it prints ``acked K`` after each flush, K the records
the store has acknowledged, so a test may kill it mid-way and know what must be stored;
with ``--hold FILE`` it prints ``holding`` after its last record and waits for FILE before
its final flush and read, so a test knows the process still holds the session then.
``wrapped``: a real ``openai.OpenAI`` client (HTTP layer mocked) wrapped into SESSION
(``auto``: the automatic session), COUNT calls of one user message each.
``app``: the same calls from a plain app that never heard of sessionware (content
``PREFIX i``, PREFIX NAME unless ``--text`` says otherwise).

``--go FILE``: write ``FILE.ready-NAME``, then wait for FILE, so that every writer of a
test starts at once. SESSION ``-`` means one session per writer, named NAME.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def wait_for_go(go: str | None, name: str) -> None:
    if go is None:
        return
    Path(f"{go}.ready-{name}").write_text("")
    wait_for_file(go)


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear within 60 s")
        time.sleep(0.005)


def chat_client(name: str) -> Any:
    """A real ``openai.OpenAI`` client whose HTTP layer answers every chat call."""
    import httpx
    import openai

    counter = iter(range(1_000_000))

    def reply(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        asked = sent["messages"][-1]["content"]
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{name}-{next(counter)}",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"re: {asked}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
            },
        )

    return openai.OpenAI(api_key="sk-test", http_client=httpx.Client(transport=httpx.MockTransport(reply)))


def call_chat(client: Any, prefix: str, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{prefix} {i}"}]
        )
    return time.perf_counter() - started


def figures(store: Any) -> dict[str, Any]:
    stats = store.stats
    return {
        "submitted_ops": stats.submitted_ops,
        "appended": stats.appended_events,
        "duplicates": stats.duplicate_events,
        "dropped_ops": stats.dropped_ops,
        "dropped_events": stats.dropped_events,
        "repaired": stats.repaired_events,
        "resets": stats.resets,
        "lost_sessions": sorted(stats.lost_sessions),
        "write_errors": stats.write_errors,
    }


async def run_manager(args: argparse.Namespace) -> dict[str, Any]:
    from sessionware import SessionManager, StorageError
    from sessionware.core.store import open_store

    store = open_store(args.store)
    session = args.name if args.session == "-" else args.session
    sm = SessionManager(session, store=store)
    wait_for_go(args.go, args.name)
    started = time.perf_counter()
    for i in range(args.count):
        await sm.user_says(f"{args.name} {i}")
        if args.batch and (i + 1) % args.batch == 0:
            try:
                await sm.flush()
            except StorageError:  # an outage: the writes stay queued and are retried
                continue
            if args.acks:
                print(f"acked {i + 1}", flush=True)
    if args.hold:
        print("holding", flush=True)
        wait_for_file(args.hold)
    deadline = time.monotonic() + 60
    while True:  # an app that must know its records are stored waits out an outage
        try:
            await sm.flush()
            break
        except StorageError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    seen = [e.text for e in await sm.get_events()]
    store.close()
    return {"elapsed": elapsed, "seen": len(seen), **figures(store)}


def run_wrapped(args: argparse.Namespace) -> dict[str, Any]:
    import sessionware
    from sessionware.adapters.api import settle
    from sessionware.core.store import open_store

    store = open_store(args.store)
    session = None if args.session == "auto" else (args.name if args.session == "-" else args.session)
    client = sessionware.wrap(chat_client(args.name), store=store, session_id=session)
    wait_for_go(args.go, args.name)
    elapsed = call_chat(client, args.name, args.count)
    settle()
    store.flush()
    store.close()
    return {"elapsed": elapsed, **figures(store)}


def run_app(args: argparse.Namespace) -> dict[str, Any]:
    wait_for_go(args.go, args.name)
    return {"elapsed": call_chat(chat_client(args.name), args.text or args.name, args.count)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["manager", "wrapped", "app"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--go")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--acks", action="store_true")
    parser.add_argument("--hold")
    parser.add_argument("--text")
    args = parser.parse_args()
    if args.mode == "app":
        args.name, count = args.rest
    else:
        args.store, args.session, args.name, count = args.rest
    args.count = int(count)
    if args.mode == "manager":
        result = asyncio.run(run_manager(args))
    elif args.mode == "wrapped":
        result = run_wrapped(args)
    else:
        result = run_app(args)
    print(json.dumps({"name": args.name, **result}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
