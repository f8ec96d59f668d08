"""``sessionware ui``: serve the store's sessions as a web page until interrupted."""

from __future__ import annotations

from sessionware.cli.app import Invocation, report_error
from sessionware.cli.parser import ExitCode
from sessionware.cli.ui.server import LOOPBACK_HOSTS, UIServer

__all__ = ["ui"]


def ui(inv: Invocation) -> int:
    """Serve the UI on ``--host``:``--port`` (127.0.0.1:8765) until Ctrl-C."""
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
        server.serve_until()
    except KeyboardInterrupt:
        inv.note("stopped")
    finally:
        server.stop()
    return int(ExitCode.OK)
