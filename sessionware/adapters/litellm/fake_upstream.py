"""An offline OpenAI + Anthropic API over real HTTP on 127.0.0.1, for a LiteLLM proxy to call.

It serves ``sessionware.adapters.fakes`` (``FakeOpenAI`` for ``/v1/chat/completions``,
``/v1/responses`` and ``/v1/embeddings``; ``FakeAnthropic`` for ``/v1/messages``) with a
threaded stdlib HTTP server: JSON answers and server-sent event streams, chunk by chunk.

The model it plays echoes the latest user message. A user message starting with
``fail:`` gets a 500 error; one starting with ``recall:`` makes it call the memory tool
``search_pages`` first when the request offers it (managed mode's hidden rounds).

    python -m sessionware.adapters.litellm.fake_upstream --port 8011
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply

__all__ = ["FakeUpstream", "recalling_model"]

RECALL = "recall:"
FAIL = "fail:"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _tool_names(body: Mapping[str, Any]) -> set[str]:
    names = set()
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping):
            function = tool.get("function")
            named = function if isinstance(function, Mapping) else tool
            names.add(str(named.get("name", "")))
    return names


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = body.get("messages")
    if found is None:
        data = body.get("input")
        found = [{"role": "user", "content": data}] if isinstance(data, str) else list(data or ())
    return [m for m in found if isinstance(m, Mapping)]


def _answered_tool(message: Mapping[str, Any]) -> bool:
    if message.get("role") == "tool" or message.get("type") == "function_call_output":
        return True
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") == "tool_result" for p in content
    )


def recalling_model(body: Mapping[str, Any]) -> Reply:
    """Echo the latest user text; call ``search_pages`` first for a ``recall:`` question."""
    messages = _messages(body)
    last = messages[-1] if messages else {}
    user = next((m for m in reversed(messages) if m.get("role") == "user" and not _answered_tool(m)), None)
    said = _text(user.get("content")) if user else ""
    if said.startswith(FAIL):
        return Reply(status=500)
    if said.startswith(RECALL) and "search_pages" in _tool_names(body) and not _answered_tool(last):
        return Reply(tool_calls=[("search_pages", {"query": said[len(RECALL) :].strip()})])
    return Reply(text=f"You said: {said}")


class FakeUpstream:
    """The server; ``start()`` serves on a background thread, ``stop()`` ends it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, keep: int = 0) -> None:
        self.openai = FakeOpenAI(recalling_model)
        self.anthropic = FakeAnthropic(recalling_model)
        self.calls = 0
        self.received: deque[dict[str, Any]] = deque(maxlen=keep or None)
        """The last ``keep`` JSON bodies received, for tests of what a proxy sent (none by default)."""
        self.keep = keep
        self._lock = threading.Lock()
        self.host = host
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        port = self.server.server_address[1]
        return f"http://{self.host}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                upstream._serve(self)

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        import httpx

        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        api = self.anthropic if handler.path.split("?")[0].endswith("/messages") else self.openai
        request = httpx.Request("POST", f"http://upstream{handler.path}", content=body)
        with self._lock:
            self.calls += 1
            if self.keep:
                self.received.append({"path": handler.path, **json.loads(body or b"{}")})
        response = api.handle(request)
        api.requests.clear()  # a server keeps no history of what it was sent
        handler.send_response(response.status_code)
        content_type = response.headers.get("content-type", "application/json")
        handler.send_header("content-type", content_type)
        if content_type.startswith("text/event-stream"):
            handler.send_header("transfer-encoding", "chunked")
            handler.end_headers()
            for part in response.iter_bytes():
                if part:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
        else:
            payload = response.read()
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        handler.wfile.flush()

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args(argv)
    upstream = FakeUpstream(args.host, args.port)
    print(f"fake OpenAI/Anthropic API on {upstream.base_url}", flush=True)
    try:
        upstream.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        upstream.server.server_close()


if __name__ == "__main__":
    main()
