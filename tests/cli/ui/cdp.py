"""A headless Chromium driven over the Chrome DevTools Protocol, standard library only.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol messages from
file descriptor 3 and writes to 4, each a JSON document ended by a NUL byte, so no
websocket client and no downloaded browser are needed (Debian's ``chromium`` package).
One page target is attached in flat mode; console errors, uncaught exceptions and
failed network loads are collected as they happen.

>>> with Browser.launch() as browser:  # doctest: +SKIP
...     browser.goto("http://127.0.0.1:8765/")
...     browser.wait_for("document.documentElement.dataset.ready === 'list'")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--window-size=1400,1000",
)


def find_chromium() -> str | None:
    found = os.environ.get("SESSIONWARE_CHROMIUM")
    if found:
        return found
    return next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page. Use ``launch()`` as a context manager."""

    def __init__(
        self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int, profile: str
    ) -> None:
        self._process = process
        self._out = to_browser
        self._in = os.fdopen(from_browser, "rb", buffering=0)
        self._profile = profile
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page(f"{domain}.enable")

    @classmethod
    def launch(cls, executable: str | None = None) -> Browser:
        path = executable or find_chromium()
        if path is None:
            raise BrowserError("no chromium found (apt-get install chromium)")
        profile = tempfile.mkdtemp(prefix="sw-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        # The child must see the pipe ends as fds 3 (reads) and 4 (writes); both are copied
        # first, as either may sit on 3 or 4 already.
        def wire() -> None:
            reads, writes = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        process = subprocess.Popen(
            [path, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,  # noqa: PLW1509 - dup2 only, before exec
            pass_fds=(3, 4, to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        return cls(process, to_child_w, from_child_r, profile)

    # -- protocol ---------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._in.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._replies[message["id"]] = message
                        self._cond.notify_all()
                else:
                    self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        params = message.get("params", {})
        self.events.append(message)
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(
                "exception: " + str(details.get("exception", {}).get("description") or details.get("text"))
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(
                "console.error: "
                + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.errors.append(f"network: {params.get('errorText')}")

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        with self._cond:
            while ident not in self._replies:
                if self._closed:
                    raise BrowserError(f"chromium exited during {method}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrowserError(f"no answer to {method}")
                self._cond.wait(remaining)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A browser-level command."""
        return self._send(method, params, None)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return self._send(method, params, self.session)

    # -- what tests use ---------------------------------------------------------------------

    def evaluate(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        """Start loading ``url`` (use ``wait_for`` to know when the page is ready)."""
        self.page("Page.navigate", url=url)

    def wait_for(self, condition: str, timeout: float = 20.0) -> float:
        """Poll ``condition`` (a JS expression) until true; return the seconds waited."""
        start = time.monotonic()
        while True:
            try:
                if self.evaluate(f"Boolean({condition})"):
                    return time.monotonic() - start
            except BrowserError:
                pass  # the page is between documents while it navigates

            if time.monotonic() - start > timeout:
                raise BrowserError(f"timed out waiting for {condition}; errors: {self.errors}")
            time.sleep(0.01)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            # Rows of long lists are drawn only near the viewport (content-visibility):
            # drawn all, as the page prints, for a picture of the whole page.
            self.evaluate(
                "for (const e of document.querySelectorAll('.ev')) e.style.contentVisibility = 'visible';"
                " new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
            )
            metrics = self.page("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 6000),
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        data = self.page("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if not self._closed:
                self._send("Browser.close", {}, None)
        except BrowserError:
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        os.close(self._out)
        self._in.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
