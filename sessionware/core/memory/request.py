"""One build's inputs, counted: the model, budget, counter, incoming turn and tools.

``BuildRequest`` is made by ``builder.build`` and read by ``plan`` and ``assemble``; it
counts what every build needs once (the system prompt and tool schemas per counter and
shape are cached on the memory) and refuses bad input before anything is planned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sessionware.core.accounting.tokens import REPLY_PRIMING_TOKENS, counter_for_model
from sessionware.core.defaults import default_price_book
from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.memory.enums import Provider
from sessionware.core.memory.layout import is_compact
from sessionware.core.memory.prompts import vm_tools
from sessionware.core.memory.vm import VirtualMemory

__all__ = ["BuildRequest", "Message"]

Message = dict[str, Any]


def answered_ids(messages: Sequence[Message], provider: Provider) -> tuple[str, ...]:
    """Tool call ids that ``messages`` answer (tool results in either shape)."""
    ids: list[str] = []
    for msg in messages:
        if provider is Provider.OPENAI and msg.get("role") == "tool":
            ids.append(str(msg.get("tool_call_id", "")))
        content = msg.get("content")
        if provider is Provider.ANTHROPIC and isinstance(content, list):
            ids.extend(
                str(b.get("tool_use_id"))
                for b in content
                if isinstance(b, dict) and b.get("type") == "tool_result"
            )
    return tuple(ids)


def opens_turn(messages: Sequence[Message], provider: Provider) -> bool:
    """True when ``messages`` hold a new user message (not only tool results)."""
    for msg in messages:
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if provider is Provider.OPENAI or not isinstance(content, list):
            return True
        if any(isinstance(b, dict) and b.get("type") != "tool_result" for b in content):
            return True
    return False


def _user_text(msg: Message) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") != "tool_result"
        )
    return ""


class BuildRequest:
    def __init__(
        self,
        vm: VirtualMemory,
        *,
        model: str,
        budget: int | None,
        incoming: Sequence[Message] | None,
        provider: Provider,
        app_tools: Sequence[Message] | None,
    ) -> None:
        self.vm = vm
        self.model = model
        self.provider = provider
        self.counter = counter_for_model(model)
        self.counter_key = getattr(self.counter, "encoding_name", f"estimate:{model}")
        if budget is None:
            window = default_price_book().context_window(model, provider.value)
            budget = vm.policy.input_budget(context_window=window)
        self.budget = budget
        self.incoming = [dict(m) for m in incoming or ()]
        self.incoming_counts: list[int] = []
        self.app_tools = list(app_tools or ())
        self.prompt = vm.state.info.system_prompt or ""
        anthropic = provider is Provider.ANTHROPIC
        compact = is_compact(vm.policy, budget)
        self.vm_tools = vm_tools(anthropic=anthropic, compact=compact) if vm.policy.tools_enabled else []
        self.app_tools_tokens = self.counter.count_tools(self.app_tools) if self.app_tools else 0
        self.tools_tokens = self.app_tools_tokens
        if self.vm_tools:
            # The VM's schemas are constants: count them once per shape, not every build.
            key = (self.counter_key, anthropic, compact)
            known = vm.tool_tokens.get(key)
            if known is None:
                known = vm.tool_tokens[key] = self.counter.count_tools(self.vm_tools)
            self.tools_tokens += known
        # The prompt is the same on nearly every build: counted once per counter and shape.
        prompt_key = (self.counter_key, anthropic, self.prompt)
        known_prompt = vm.prompt_tokens.get(prompt_key)
        if known_prompt is None:
            if len(vm.prompt_tokens) >= 8:
                vm.prompt_tokens.clear()
            known_prompt = vm.prompt_tokens[prompt_key] = self._prompt_tokens(anthropic)
        self.system_tokens, self.block_overhead = known_prompt

    def _prompt_tokens(self, anthropic: bool) -> tuple[int, int]:
        """Tokens of the system prompt as sent (reply priming included), and of the framing
        of a system message of ours."""
        count = self.counter.count_text
        if anthropic:
            return REPLY_PRIMING_TOKENS + 3 + count("system") + count(self.prompt), 0
        prompt_msg = (
            self.counter.count_message({"role": "system", "content": self.prompt}) if self.prompt else 0
        )
        return REPLY_PRIMING_TOKENS + prompt_msg, 3 + count("system")

    def check(self) -> None:
        """Refuse bad input before anything is planned."""
        if self.provider is Provider.ANTHROPIC and any(m.get("role") == "system" for m in self.incoming):
            raise InvalidSessionOperation("build", "Anthropic incoming messages cannot have the system role")
        self.incoming_counts = [self.counter.count_message(m) for m in self.incoming]
        required = self.system_tokens + sum(self.incoming_counts) + self.app_tools_tokens
        if required > self.budget:
            raise TokenLimitExceeded(self.budget, required, what="system prompt + incoming messages")

    def query(self) -> tuple[str, str]:
        """The user's words this build answers, and the key memory calls are counted under.

        They are the incoming user message's, else (tool results, or nothing incoming)
        those of the user message that opened the session's latest turn; the key is that
        turn's index and a digest of the words, so every build for one incoming message,
        recorded or not, shares it and another unrecorded question gets its own.
        """
        vm = self.vm
        opens = opens_turn(self.incoming, self.provider)
        text = ""
        if opens:
            text = " ".join(_user_text(m) for m in self.incoming if m.get("role") == "user")
            turn = len(vm.turns)
        else:
            turn = vm.current_turn
            if vm.turns:
                events = vm.turns[-1].events
                if events and events[0].role is not None and events[0].role.value == "user":
                    text = events[0].text
        digest = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
        return text, f"{turn}:{digest}"
