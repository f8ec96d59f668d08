"""A "legacy" chat app that knows nothing about sessionware: it imports only ``openai``.

Track it without changing a line::

    sessionware run -- python examples/legacy_app.py
    sessionware sessions
    sessionware show <id from the list>

By default it talks to a tiny OpenAI-compatible server it starts on localhost (chat
completions, plain and streamed, in the shapes OpenAI documents), so it runs offline.
With ``OPENAI_API_KEY`` set it talks to the real API instead (model: ``$OPENAI_MODEL``,
default ``gpt-4o-mini``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai import OpenAI

SYSTEM = "You are a terse travel assistant."
QUESTIONS = [
    "I have two days in Lisbon. Where should I start?",
    "And where do I eat on the first evening?",
    "Summarise the plan in one line.",
]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _answer(messages: list[dict[str, Any]]) -> str:
    asked = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    turn = sum(1 for m in messages if m.get("role") == "user")
    return f"(offline answer {turn}) You asked: {asked}"


class _ChatHandler(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``, answered like OpenAI: JSON, or server-sent events."""

    def log_message(self, format: str, *args: Any) -> None:  # keep the app's output clean
        pass

    def do_POST(self) -> None:
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        text = _answer(body["messages"])
        prompt = sum(_tokens(str(m.get("content") or "")) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": _tokens(text),
            "total_tokens": prompt + _tokens(text),
        }
        base = {
            "id": f"chatcmpl-local-{time.monotonic_ns()}",
            "created": int(time.time()),
            "model": body["model"],
        }
        if not body.get("stream"):
            reply = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
            self._send(json.dumps(reply).encode(), "application/json")
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        words = text.split(" ")
        events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        events += [
            {**chunk, "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}}]}
            for i, w in enumerate(words)
        ]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._send(sse.encode(), "text/event-stream")

    def _send(self, payload: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def local_server() -> ThreadingHTTPServer:
    """An OpenAI-compatible chat server on a free localhost port, serving in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    server = None
    if os.environ.get("OPENAI_API_KEY"):
        client = OpenAI()
        model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    else:
        server = local_server()
        host, port = server.server_address[:2]
        client = OpenAI(api_key="offline", base_url=f"http://{host!s}:{port}/v1")
        model = "gpt-4o-mini"
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    try:
        for number, question in enumerate(QUESTIONS, 1):
            messages.append({"role": "user", "content": question})
            print(f"> {question}")
            if number < len(QUESTIONS):
                reply = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
                answer = reply.choices[0].message.content or ""
                print(answer)
            else:
                stream = client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
                answer = "".join(parts)
                print(answer)
            messages.append({"role": "assistant", "content": answer})
    finally:
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    main()
