"""The ``sessionware`` command: record a program's LLM calls; look at, export and
re-import recorded sessions.

::

    sessionware run [--session ID] [--propagate] -- PROGRAM [ARGS]
                                                       run PROGRAM with its calls recorded
    sessionware sessions [--limit N] [--parent ID]     sessions, newest first
    sessionware show ID [--max-chars N]                one session as a timeline
    sessionware stats [--since DAY] [--until DAY]      tokens and cost by model and by day
    sessionware export ID [--format jsonl|json] [-o FILE]
    sessionware import FILE [--as NEW_ID]

Every command takes ``--store URL`` (default ``$SESSIONWARE_STORE``, else
``sqlite:///./sessionware.db``, the file zero-code mode records into). Listings print
an aligned table on a terminal and tab-separated lines when piped; ``--format
table|plain|json`` chooses. Exit codes: 0 success, 1 runtime error (unreadable or
corrupt store, bad import file, id taken), 2 usage error, 3 session not found.

Importing this package loads only argparse; a command loads the store when it runs.

>>> from sessionware.cli import main
>>> main(["--version"])  # doctest: +SKIP
sessionware 0.1.0
0
"""

from __future__ import annotations

from sessionware.cli.app import main

__all__ = ["main"]
