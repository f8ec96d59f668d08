"""Managed mode's count of what the app asked to send (``app_input_tokens``)."""

from __future__ import annotations

import threading
from typing import Any

from sessionware.adapters.engine.messages import message_keys
from sessionware.adapters.engine.types import CallRequest, WireMessage
from sessionware.core.accounting.tokens import REPLY_PRIMING_TOKENS, counter_for_model
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

    def count(self, request: CallRequest, model: str) -> int:
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
