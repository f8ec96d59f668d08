"""Keys of a re-sent history, computed only for the messages that are new.

Apps send their whole history on every call, so a request usually starts with exactly
the messages the same conversation sent last time. Comparing those message dicts with
the previous request's (one list comparison, at C speed) costs a tenth of keying them
one by one in Python; equal dicts have equal keys, so only the messages after that
prefix are keyed. This matters where keys are computed on the app's path: managed mode
records the latest turn before it builds the context, and recording diffs by keys.

A few recent conversations are kept, each under its first message's content object (an
app re-sends the same string); a conversation that changed, or an id that now belongs
to another one, only fails the comparison and is keyed in full as before.

>>> history = ResentHistory()
>>> def key_all(messages):
...     return [hash(m["content"]) for m in messages], list(messages)
>>> first = [{"role": "user", "content": f"m{i}"} for i in range(100)]
>>> keys, _ = history.keyed(first, key_all)
>>> again, kept = history.keyed([*first, {"role": "user", "content": "new"}], key_all)
>>> again[:100] == keys and len(kept) == 101
True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["KeyAll", "ResentHistory"]

KeyAll = Callable[[list[Any]], tuple[list[int], list[dict[str, Any]]]]
"""A reader's own keying of messages: their keys and the messages it kept."""

_MIN_SIZE = 64
"""Shorter histories are keyed directly: remembering them would cost as much."""


class ResentHistory:
    """The last keyed request of a few recent conversations (thread-safe)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._seen: OrderedDict[int, tuple[list[Any], list[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def keyed(self, raw: list[Any], key_all: KeyAll) -> tuple[list[int], list[dict[str, Any]]]:
        """What ``key_all(raw)`` returns, keying only what follows the prefix seen last time."""
        if len(raw) < _MIN_SIZE or not isinstance(raw[0], dict):
            return key_all(raw)
        ident = id(raw[0].get("content"))
        seen = self._seen.get(ident)
        n = 0
        keys: list[int] = []
        if seen is not None:
            previous, previous_keys = seen
            n = len(previous)
            if n <= len(raw) and raw[:n] == previous:
                keys = previous_keys
            else:
                n = 0
        tail_keys, tail_kept = key_all(raw[n:] if n else raw)
        if n:
            keys = keys + tail_keys
            kept: list[dict[str, Any]] = raw[:n] + tail_kept
        else:
            keys, kept = tail_keys, tail_kept
        if len(kept) == len(raw):  # every message keyed: the next request can start from here
            with self._lock:
                self._seen[ident] = (raw, keys)
                self._seen.move_to_end(ident)
                while len(self._seen) > self.limit:
                    self._seen.popitem(last=False)
        return keys, kept
