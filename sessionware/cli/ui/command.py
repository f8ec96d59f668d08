"""``sessionware ui``: serve the store's sessions as a web page until interrupted."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sessionware.cli.app import Invocation, report_error
from sessionware.cli.parser import ExitCode
from sessionware.cli.ui.server import LOOPBACK_HOSTS, UIServer

__all__ = ["ui"]


def ui(inv: Invocation) -> int:
    """Serve the UI on ``--host``:``--port`` (127.0.0.1:8765) until Ctrl-C or SIGTERM."""
    host: str = inv.args.host
    if host not in LOOPBACK_HOSTS and not inv.args.allow_remote:
        return report_error(
            inv,
            f"--host {host} would let other machines read every recorded conversation; "
            "add --allow-remote if that is what you want",
            ExitCode.USAGE,
        )
    store = inv.open_store()
    server = UIServer(store, host=host, port=inv.args.port)
    try:
        server.start()
    except OSError as exc:
        return report_error(
            inv, f"cannot listen on {host}:{inv.args.port}: {exc.strerror or exc}", ExitCode.ERROR
        )
    if host not in LOOPBACK_HOSTS:
        inv.note(
            f"WARNING: listening on {host}, not only this machine: anyone who can reach it can read "
            "every conversation in the store (there is no login)"
        )
    inv.note(f"serving {store.kind}: {store.location} read-only at {server.url} (Ctrl-C stops)")
    inv.stderr.flush()
    try:
        with _terminated() as terminated:
            server.serve_until(terminated.is_set)
        inv.note("stopped")
    except KeyboardInterrupt:
        inv.note("stopped")
    finally:
        server.stop()
    return int(ExitCode.OK)


@contextmanager
def _terminated() -> Iterator[threading.Event]:
    """An event set by SIGTERM while serving (as a service manager or ``kill`` stops it),
    so the ui closes its store as it does on Ctrl-C; the previous handler is put back.
    Off the main thread, where no handler can be installed, the event is never set."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: event.set())
    try:
        yield event
    finally:
        signal.signal(signal.SIGTERM, previous)
