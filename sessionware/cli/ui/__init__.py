"""``sessionware ui``: a local, read-only web page over a session store.

The list of sessions (search, sort, pages), one session (its timeline of messages, tool
calls, hidden rounds, faults, compactions and branches; per-call token, cost and latency
charts; app vs wire vs cached tokens of managed calls; the context each call was sent,
part by part) and totals by model and by day. Served from this machine by the standard
library's ``http.server``, with the page, script and style shipped in this package and
nothing fetched from elsewhere. It listens on 127.0.0.1 unless told otherwise.

>>> from sessionware.cli.ui import UIServer
>>> from sessionware.core.store import open_store
>>> server = UIServer(open_store("memory://"), port=0).start()
>>> server.url.startswith("http://127.0.0.1:")
True
>>> server.stop()
"""

from __future__ import annotations

from sessionware.cli.ui.server import UIServer

__all__ = ["UIServer"]
