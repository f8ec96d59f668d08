"""Demand paging: recall phrases in the user's new message fault likely pages in first.

Only a message with a recall signal ("remind me", "what did we decide", "you said")
triggers it, stop words never count as topics, and at most ``max_prefetch_pages``
pages are recalled, so ordinary messages cost nothing.

>>> has_recall_signal("Remind me what the locker code was?")
True
>>> has_recall_signal("Write a haiku about spring")
False
"""

from __future__ import annotations

import re

__all__ = ["RECALL_SIGNALS", "has_recall_signal"]

RECALL_SIGNALS = tuple(
    re.compile(p, re.I)
    for p in (
        r"\b(as we|what did (we|i|you)|earlier|previously|before|remember( when)?|last time)\b",
        r"\bthat (decision|choice|plan|approach|number|code|value|name)\b",
        r"\b(go back to|revisit|return to)\b",
        r"\b(remind me|refresh my memory|recall|again)\b",
        r"\byou (said|mentioned|suggested|recommended|told)\b",
        r"\b(what was|what were|which .{1,40} (did|was|were))\b",
    )
)


def has_recall_signal(text: str) -> bool:
    return any(p.search(text) for p in RECALL_SIGNALS)
