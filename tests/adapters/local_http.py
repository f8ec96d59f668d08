"""A real HTTP server on 127.0.0.1 for the tests where a mocked transport hides the problem.

``respx`` and ``MockTransport`` hand the SDK bodies that are already complete, never
compressed and never cut, and have no connection to release. This server sends what real
servers send: gzip-encoded bodies, bodies cut off by a lost connection, server-sent
events in chunks, and streams held open until the client lets go (which it notices).

>>> with LocalServer() as server:                         # doctest: +SKIP
...     server.push(Reply(body=b'{"ok": true}', gzip=True))
...     client = openai.OpenAI(base_url=server.url, api_key="k")
"""

from __future__ import annotations

import gzip as gzip_module
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LocalServer", "Reply", "sse"]

HOLD_LIMIT_S = 10.0


def sse(*events: dict[str, Any], done: bool = False) -> list[bytes]:
    """Server-sent events, one chunk each (Anthropic's ``event:`` line from ``type``)."""
    chunks = []
    for event in events:
        head = f"event: {event['type']}\n".encode() if "type" in event else b""
        chunks.append(head + b"data: " + json.dumps(event).encode() + b"\n\n")
    if done:
        chunks.append(b"data: [DONE]\n\n")
    return chunks


@dataclass
class Reply:
    """One response: ``chunks`` of body, written one by one."""

    chunks: list[bytes] = field(default_factory=list)
    status: int = 200
    content_type: str = "application/json"
    gzip: bool = False
    cut: bool = False
    """Announce the whole length, send half of the body, then drop the connection."""
    hold: bool = False
    """After the chunks, keep the response open (SSE comments) until the client lets go."""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, body: Any, **kwargs: Any) -> Reply:
        return cls(chunks=[json.dumps(body).encode()], **kwargs)


class LocalServer:
    """A threaded HTTP server answering POSTs with the pushed replies, in order."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.bodies: list[Any] = []
        self.released = threading.Event()
        """Set when the client closed a held response."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def push(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            server.bodies.append(json.loads(raw) if raw else None)
            reply = server.replies.popleft() if server.replies else Reply(status=500)
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.hold:
                self._held(reply)
                return
            body = b"".join(reply.chunks)
            if reply.gzip:
                body = gzip_module.compress(body)
                self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if reply.cut:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _held(self, reply: Reply) -> None:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + HOLD_LIMIT_S
            chunks = deque(reply.chunks)
            try:
                while time.monotonic() < deadline:
                    chunk = chunks.popleft() if chunks else b": still here\n\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    if not chunks:
                        time.sleep(0.02)
            except OSError:
                server.released.set()
            self.close_connection = True

    return Handler
