"""Managed mode's count of what the app asked to send (``app_input_tokens``)."""

from __future__ import annotations

import threading
from typing import Any

from sessionware.adapters.engine.messages import message_keys
from sessionware.adapters.engine.record import ThreadIndex
from sessionware.adapters.engine.types import CallRequest, WireMessage
from sessionware.core.accounting.tokens import REPLY_PRIMING_TOKENS, counter_for_model
from sessionware.core.memory.vm import Counter, VirtualMemory
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.state import SessionState

__all__ = ["AppTokens"]

EXTENSION = "sessionware.adapters.managed.app_tokens"


class AppTokens:
    """Tokens of the app's requests in one session, each distinct message counted once.

    Apps re-send their history: when a request starts with the previous one, only the
    new messages are counted; otherwise known messages are looked up by identity.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[int, int] = {}
        self.prev_keys: list[int] = []
        self.prev_total = 0
        self.fixed: dict[str, int] = {}
        """Tokens of system prompts and tool lists, by their text."""

    @classmethod
    def of(cls, state: SessionState) -> AppTokens:
        found = state.extensions.get(EXTENSION)
        if not isinstance(found, AppTokens):
            found = state.extensions[EXTENSION] = cls()
        return found

    def count(self, request: CallRequest, model: str, state: SessionState | None = None) -> int:
        """Tokens of ``request`` for ``model``. With the call's ``state``, messages the
        session's memory holds as pages take the tokens their pages counted (the same
        counter on the same text), so a process meeting a long stored session does not
        count its whole history again; the others are counted here."""
        counter = counter_for_model(model)
        keys = request.keys
        if keys is None:
            keys = message_keys(request.messages)
        with self.lock:
            prev, known = self.prev_keys, self.by_key
            start, total = 0, 0
            if len(prev) <= len(keys) and keys[: len(prev)] == prev:
                start, total = len(prev), self.prev_total
            missing: list[int] = []
            for i in range(start, len(keys)):
                tokens = known.get(keys[i])
                if tokens is None:
                    missing.append(i)
                else:
                    total += tokens
            if missing and state is not None and len(missing) >= _FROM_PAGES:
                counted, missing = _from_session(state, counter, keys, missing)
                for i, tokens in counted:
                    known[keys[i]] = tokens
                    total += tokens
            if missing:
                first = missing[0]
                messages = request.messages_from(first)
                for i in missing:
                    tokens = known[keys[i]] = counter.count_message(_countable(messages[i - first]))
                    total += tokens
            self.prev_keys, self.prev_total = keys, total
            total += REPLY_PRIMING_TOKENS
            if request.system:
                total += self._fixed("s" + request.system, lambda: counter.count_message(_system(request)))
            if request.tools:
                tools = request.tools
                total += self._fixed("t" + repr(tools), lambda: counter.count_tools(tools))
            return total

    def _fixed(self, key: str, count: Any) -> int:
        found = self.fixed.get(key)
        if found is None:
            if len(self.fixed) > 64:
                self.fixed.clear()
            found = self.fixed[key] = int(count())
        return found


_FROM_PAGES = 64
"""Fewer messages to count are counted directly (the usual call: the latest turn)."""


def _from_session(
    state: SessionState, counter: Counter, keys: list[int], missing: list[int]
) -> tuple[list[tuple[int, int]], list[int]]:
    """(index, tokens) of the ``missing`` messages the session holds, and the indexes
    still to count from the request.

    A message is the recorded message at its place in the session's thread when their
    keys are equal: the diff's own test, so the session recorded it from this very
    message (a tool result is keyed by its call id, so its recorded text is counted). A
    plain text message takes the tokens its memory page counted (the same counter on the
    same text); any other is counted from the recorded fields, which spares making the
    request's messages (the slow part of counting a long history)."""
    vm = VirtualMemory.of(state)
    if vm is not None and vm.counter is not counter:
        vm = None
    with state.lock:
        thread = ThreadIndex.of(state)
        thread_keys, seqs = thread.keys, thread.seqs
        events = state.events
    matched = [seqs[i] if i < len(thread_keys) and thread_keys[i] == keys[i] else 0 for i in missing]
    from_pages = vm.text_tokens(matched) if vm is not None else [None] * len(matched)
    counted: list[tuple[int, int]] = []
    rest: list[int] = []
    framing: dict[Role, int] = {}
    for i, seq, tokens in zip(missing, matched, from_pages, strict=True):
        event = events[seq - 1] if 0 < seq <= len(events) else None
        if event is None or event.seq != seq or event.type is not EventType.MESSAGE or event.role is None:
            rest.append(i)
        elif tokens is None:
            counted.append((i, counter.count_message(_recorded(event))))
        else:
            frame = framing.get(event.role)
            if frame is None:
                frame = framing[event.role] = counter.count_message({"role": event.role.value})
            counted.append((i, frame + tokens))
    return counted, rest


def _recorded(event: SessionEvent) -> dict[str, Any]:
    """A recorded message as ``_countable`` shows the request's."""
    out: dict[str, Any] = {"role": event.role.value if event.role else "", "content": event.content}
    if event.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments}} for c in event.tool_calls
        ]
    if event.tool_call_id:
        out["tool_call_id"] = event.tool_call_id
    if event.name:
        out["name"] = event.name
    return out


def _system(request: CallRequest) -> dict[str, Any]:
    return {"role": "system", "content": request.system}


def _countable(message: WireMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.calls:
        out["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}} for c in message.calls]
    if message.call_id:
        out["tool_call_id"] = message.call_id
    if message.name:
        out["name"] = message.name
    return out
