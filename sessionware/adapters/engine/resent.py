"""Keys of a re-sent history, computed only for the messages that are new.

Apps send their whole history on every call, so a request usually starts with exactly
the messages the same conversation sent last time. Comparing those message dicts with
the ones seen before (one list comparison, at C speed) costs a tenth of keying them one
by one in Python; equal dicts have equal keys, so only the messages after that prefix
are keyed. This matters where keys are computed on the app's path: managed mode records
the latest turn before it builds the context, and recording diffs by keys.

Per conversation, the messages seen so far are kept as a **snapshot**: copies of their
dicts and lists (strings and other values are shared), grown by the new messages of
each call. So

* a request costs the comparison and the new messages: the previous request's dicts
  are not held, and are not freed on the next call's path;
* a message the app edits in place (``messages[3]["content"] = ...``, which SDKs that
  pass the app's own dicts, such as LiteLLM, hand over unchanged) differs from its
  snapshot, where a kept reference to the same dict would compare equal to itself.

A few recent conversations are kept; a request is compared with those that start with
the same content: the same object when an app re-sends its own list, an equal one when
the history arrives parsed anew on every call (a LiteLLM proxy's request body: each call
brings new dicts and strings, equal to the ones before). A conversation that changed,
or one not seen yet, is keyed in full as before and kept from then on; a request that
is a prefix of one seen (a call made again without its last answer) takes its keys.

>>> history = ResentHistory()
>>> def key_all(messages):
...     return [hash(m["content"]) for m in messages], list(messages)
>>> first = [{"role": "user", "content": f"m{i}"} for i in range(100)]
>>> keys, _ = history.keyed(first, key_all)
>>> again, kept = history.keyed([*first, {"role": "user", "content": "new"}], key_all)
>>> again[:100] == keys and len(kept) == 101
True
>>> first[5]["content"] = "edited in place"
>>> edited, _ = history.keyed(first, key_all)
>>> edited[5] == hash("edited in place")
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["KeyAll", "ResentHistory"]

KeyAll = Callable[[list[Any]], tuple[list[int], list[dict[str, Any]]]]
"""A reader's own keying of messages: their keys and the messages it kept."""

_MIN_SIZE = 64
"""Shorter histories are keyed directly: remembering them would cost as much."""


def _copy(value: Any) -> Any:
    """``value`` with its dicts and lists copied (the parts an app can change in place)."""
    if value.__class__ is dict:
        return {k: _copy(v) for k, v in value.items()}
    if value.__class__ is list:
        return [_copy(v) for v in value]
    return value


def _snapshot(messages: list[Any]) -> list[Any]:
    out = []
    for message in messages:
        if message.__class__ is not dict:
            # An SDK object the app re-sends (read before the SDK prepared the request):
            # kept by reference, equal to itself only.
            out.append(message)
            continue
        copy = dict(message)
        for name, value in copy.items():
            if value.__class__ is dict or value.__class__ is list:
                copy[name] = _copy(value)
        out.append(copy)
    return out


class _Conversation:
    """The messages one conversation sent so far (a snapshot) and their keys."""

    __slots__ = ("first", "keys", "lock", "messages")

    def __init__(self, raw: list[Any], keys: list[int]) -> None:
        self.first = raw[0].get("content")
        """The first message's content object (held, so its ``id`` is not reused)."""
        self.messages = _snapshot(raw)
        self.keys = list(keys)
        self.lock = threading.Lock()


class ResentHistory:
    """The messages of a few recent conversations, to key what they re-send (thread-safe)."""

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._seen: list[_Conversation] = []
        """Most recently used last."""
        self._lock = threading.Lock()

    def keyed(self, raw: list[Any], key_all: KeyAll) -> tuple[list[int], list[dict[str, Any]]]:
        """What ``key_all(raw)`` returns, keying only what follows the prefix seen before."""
        if len(raw) < _MIN_SIZE or not isinstance(raw[0], dict):
            return key_all(raw)
        first = raw[0].get("content")
        with self._lock:
            candidates = [c for c in reversed(self._seen) if c.first is first or c.first == first]
        for conversation in candidates:
            found = self._extend(conversation, raw, key_all)
            if found is not None:
                return found
        keys, kept = key_all(raw)
        if len(kept) == len(raw):  # every message keyed: later requests can start from here
            self._remember(_Conversation(raw, keys))
        return keys, kept

    def _extend(
        self, conversation: _Conversation, raw: list[Any], key_all: KeyAll
    ) -> tuple[list[int], list[dict[str, Any]]] | None:
        """Keys of ``raw`` if it starts with ``conversation`` (or is a prefix of it)."""
        with conversation.lock:
            seen = conversation.messages
            n = len(seen)
            if len(raw) < n:
                if raw != seen[: len(raw)]:
                    return None
                self._touch(conversation)
                return conversation.keys[: len(raw)], list(raw)
            head = raw[:n]
            if head != seen:
                return None
            tail = raw[n:]
            tail_keys, tail_kept = key_all(tail)
            keys = conversation.keys + tail_keys  # a new list: callers keep the ones they got
            if len(tail_kept) == len(tail):
                seen.extend(_snapshot(tail))
                conversation.keys.extend(tail_keys)
            head.extend(tail_kept)
        self._touch(conversation)
        return keys, head

    def _touch(self, conversation: _Conversation) -> None:
        with self._lock:
            seen = self._seen
            if seen and seen[-1] is conversation:
                return
            if conversation in seen:
                seen.remove(conversation)
                seen.append(conversation)

    def _remember(self, conversation: _Conversation) -> None:
        with self._lock:
            self._seen.append(conversation)
            if len(self._seen) > self.limit:
                del self._seen[0]
