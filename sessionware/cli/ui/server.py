"""The HTTP side of ``sessionware ui``: a read-only JSON API and the page that uses it.

Standard library only: a ``ThreadingHTTPServer`` on its own thread. Only ``GET`` and
``HEAD`` are served (anything else is 405): the UI cannot change a store. The page and
its script and style are files of this package; nothing is fetched from elsewhere, and
the Content-Security-Policy says so to the browser. Requests whose ``Host`` is not the
address the server listens on are refused (421), so a web page elsewhere cannot read
the API through a DNS name rebound to 127.0.0.1.

Routes::

    GET /                                   the page (list, session, totals: one page app)
    GET /api/sessions?q=&sort=&desc=&offset=&limit=
    GET /api/sessions/ID                    header, totals, cache and managed figures
    GET /api/sessions/ID/events?offset=&limit=&kinds=user,assistant
    GET /api/sessions/ID/events/SEQ         one event, texts in full
    GET /api/sessions/ID/calls              per-call series for the charts
    GET /api/sessions/ID/context/SEQ        what the call at SEQ was sent, part by part
    GET /api/totals?wait=                   usage, cost and cache by model and by day
                                            (``partial`` after ``wait`` s while still counting)
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sessionware.cli.ui.catalog import SessionCatalog, SessionSort
from sessionware.cli.ui.context import call_context
from sessionware.cli.ui.session_data import SessionViews
from sessionware.cli.ui.totals import StoreTotals
from sessionware.core.accounting.caching import CacheFigures
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.errors import SessionNotFound, SessionwareError
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store.store import Store

__all__ = ["LOOPBACK_HOSTS", "UIServer"]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_LIMIT = 500
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _warm_up() -> None:
    """Build the validators and serializers the session pages use (pydantic defers them
    to first use: about half a second for ``SessionEvent`` on a busy 2-core machine),
    so the first session opened does not wait for them. Run on a thread at start."""
    try:
        for model in (SessionEvent, SessionInfo, CacheFigures):
            model.model_rebuild()  # builds only what is still deferred
    except Exception:  # a faster first page is all this is for
        logger.debug("sessionware ui: warm-up failed", exc_info=True)


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _int(
    query: dict[str, list[str]], name: str, default: int, *, low: int = 0, high: int | None = None
) -> int:
    raw = query.get(name, [None])[0]
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise _BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


class _App:
    """Routes a path and query to the data it names."""

    def __init__(self, store: Store, prices: PriceBook) -> None:
        self.store = store
        self.catalog = SessionCatalog(store, prices)
        self.views = SessionViews(store, prices)
        self.totals = StoreTotals(store, prices, self.catalog)

    def api(self, parts: list[str], query: dict[str, list[str]]) -> Any:
        if parts == ["sessions"]:
            sort_name = query.get("sort", ["created"])[0]
            try:
                sort = SessionSort(sort_name)
            except ValueError:
                raise _BadRequest(f"unknown sort {sort_name!r}") from None
            return self.catalog.page(
                query=query.get("q", [""])[0],
                sort=sort,
                descending=query.get("desc", ["1"])[0] != "0",
                offset=_int(query, "offset", 0),
                limit=_int(query, "limit", 50, low=1, high=_MAX_LIMIT),
            )
        if parts == ["totals"]:
            raw_wait = query.get("wait", [""])[0]
            try:
                wait = float(raw_wait) if raw_wait else None
            except ValueError:
                raise _BadRequest(f"wait must be a number of seconds, got {raw_wait!r}") from None
            if wait is not None and not 0 <= wait <= 60:
                raise _BadRequest(f"wait must be between 0 and 60 seconds, got {wait}")
            return self.totals.report(wait)
        if len(parts) >= 2 and parts[0] == "sessions":
            return self._session(parts[1], parts[2:], query)
        raise _NotFound("/api/" + "/".join(parts))

    def _session(self, session_id: str, rest: list[str], query: dict[str, list[str]]) -> Any:
        session = self.views.get(session_id)
        with session.lock:
            if not rest:
                return session.header(self.catalog.children(session_id))
            if rest == ["events"]:
                kinds = frozenset(k for k in query.get("kinds", [""])[0].split(",") if k) or None
                return session.page(
                    _int(query, "offset", 0), _int(query, "limit", 200, low=1, high=_MAX_LIMIT), kinds
                )
            if rest == ["calls"]:
                return session.series()
            if len(rest) == 2 and rest[0] in ("events", "context"):
                try:
                    seq = int(rest[1])
                except ValueError:
                    raise _BadRequest(f"not an event number: {rest[1]!r}") from None
                found = session.full_event(seq) if rest[0] == "events" else call_context(session, seq)
                if found is None:
                    raise _NotFound(
                        f"no {'call' if rest[0] == 'context' else 'event'} #{seq} in {session_id}"
                    )
                return found
        raise _NotFound("/".join(["sessions", session_id, *rest]))


def _handler(app: _App, allowed_hosts: frozenset[str] | None) -> type[BaseHTTPRequestHandler]:
    """The request handler; ``allowed_hosts`` None accepts any ``Host`` (bound to all interfaces)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "sessionware-ui"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Security-Policy", _CSP)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_json(self, status: HTTPStatus, value: Any) -> None:
            body = json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))
            self._send(status, body.encode("utf-8"), "application/json; charset=utf-8")

        def _host_allowed(self) -> bool:
            if allowed_hosts is None:
                return True
            host = (self.headers.get("Host") or "").strip().lower()
            if host.startswith("["):
                name = host[1:].split("]", 1)[0]
            else:
                name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            return name in allowed_hosts

        def do_GET(self) -> None:
            if not self._host_allowed():
                self._send_json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header"})
                return
            url = urlsplit(self.path)
            try:
                if url.path in _STATIC:
                    name, content_type = _STATIC[url.path]
                    body = resources.files("sessionware.cli.ui").joinpath("static", name).read_bytes()
                    self._send(HTTPStatus.OK, body, content_type)
                    return
                if not url.path.startswith("/api/"):
                    raise _NotFound(url.path)
                parts = [unquote(p) for p in url.path[len("/api/") :].split("/") if p]
                value = app.api(parts, parse_qs(url.query))
                self._send_json(HTTPStatus.OK, value)
            except (_NotFound, SessionNotFound) as exc:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
            except _BadRequest as exc:
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except SessionwareError as exc:
                logger.warning("sessionware ui: %s", exc)
                self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_HEAD = do_GET

        def _refuse(self) -> None:
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    return Handler


class UIServer:
    """``sessionware ui``'s web server over one store, on its own thread.

    >>> from sessionware.core.store import open_store
    >>> server = UIServer(open_store("memory://"), port=0).start()
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
    """

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        prices: PriceBook | None = None,
    ) -> None:
        self.store = store
        if prices is None:
            from sessionware.core.defaults import default_price_book

            prices = default_price_book()
        self._app = _App(store, prices)
        self._requested = (host, port)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            return self._requested
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def _allowed_hosts(self) -> frozenset[str] | None:
        host = self._requested[0]
        if host in LOOPBACK_HOSTS:
            return LOOPBACK_HOSTS
        # Bound to every interface on purpose (--allow-remote): any name it is reached by.
        return None if host in ("0.0.0.0", "::", "") else frozenset({host.lower(), *LOOPBACK_HOSTS})

    def start(self) -> UIServer:
        """Bind and serve in a background thread; returns self (the port is known from here)."""
        handler = _handler(self._app, self._allowed_hosts())
        server_class = _Server6 if ":" in self._requested[0] else ThreadingHTTPServer
        self._httpd = server_class(self._requested, handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sessionware-ui", daemon=True)
        self._thread.start()
        threading.Thread(target=_warm_up, name="sessionware-ui-warm-up", daemon=True).start()
        return self

    def serve_until(self, stop: Callable[[], bool] | None = None) -> None:
        """Block until interrupted (or ``stop()`` is true, checked twice a second)."""
        event = threading.Event()
        while not event.wait(0.5):
            if stop is not None and stop():
                return

    def stop(self) -> None:
        """Stop serving, bounded: nothing waits on a client, and background reads still
        under way after a few seconds are left to end on their own (daemon) threads."""
        if self._httpd is not None:
            if self._thread is not None and self._thread.is_alive():
                self._httpd.shutdown()  # waits for serve_forever, which only a live thread ends
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._app.totals.close()
        self._app.catalog.close()


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
