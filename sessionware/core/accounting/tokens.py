"""Local token counting: exact for OpenAI encodings, a labelled estimate otherwise.

Provider-reported usage is always the truth; these counts are used where there is none
(building a context under a budget, streams without usage, events recorded without a
call). Every counter says whether it is exact for its model.

>>> counter = counter_for_model("gpt-4o")
>>> counter.exact, counter.count_text("hello world")
(True, 2)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from sessionware.core.accounting.encodings import encoding_name_for_model, get_encoding

__all__ = [
    "EncodingCounter",
    "EstimatingCounter",
    "TokenCounter",
    "counter_for_model",
]

# OpenAI chat formatting: every message is wrapped in a few special tokens, a `name`
# costs one more, and the reply is primed with three. These are the figures OpenAI
# documents for every chat model since gpt-3.5-turbo-0613.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
# An image part's low-detail cost; high detail depends on pixels we do not have.
IMAGE_PART_TOKENS = 85
# Tool definitions are rendered by the provider in a private format; a fixed overhead
# per function plus its JSON text is close to what both providers bill.
TOKENS_PER_TOOL = 8


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of text and of provider-shaped message lists."""

    @property
    def exact(self) -> bool:
        """True when text counts equal the provider's tokenizer."""
        ...

    def count_text(self, text: str) -> int: ...

    def count_messages(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int: ...


class _MessageCounting:
    """Shared message-list walk; subclasses supply ``count_text``."""

    def __init__(self) -> None:
        self._framing: dict[str, int] = {}
        """Tokens of a message's framing and role, per role (a handful of roles, counted once)."""

    def count_text(self, text: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def count_content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.count_text(content)
        total = 0
        if isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
            for part in content:
                total += self._count_part(part)
            return total
        return self.count_text(json.dumps(content, default=str))

    def _count_part(self, part: Any) -> int:
        if isinstance(part, str):
            return self.count_text(part)
        if not isinstance(part, Mapping):
            return self.count_text(str(part))
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            return self.count_text(str(part.get("text", "")))
        if kind in ("image_url", "image", "input_image"):
            return IMAGE_PART_TOKENS
        if kind == "tool_use":
            return self.count_text(str(part.get("name", ""))) + self.count_text(
                json.dumps(part.get("input", {}), separators=(",", ":"))
            )
        if kind == "tool_result":
            return self.count_content(part.get("content"))
        return self.count_text(json.dumps(part, separators=(",", ":"), default=str))

    def count_message(self, message: Mapping[str, Any]) -> int:
        role = str(message.get("role", ""))
        total = self._framing.get(role)
        if total is None:
            total = self._framing[role] = TOKENS_PER_MESSAGE + self.count_text(role)
        total += self.count_content(message.get("content"))
        if message.get("name"):
            total += TOKENS_PER_NAME + self.count_text(str(message["name"]))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            total += TOKENS_PER_MESSAGE + self.count_text(str(function.get("name", "")))
            total += self.count_text(str(function.get("arguments", "")))
        if message.get("tool_call_id"):
            total += self.count_text(str(message["tool_call_id"]))
        return total

    def count_tools(self, tools: Sequence[Mapping[str, Any]]) -> int:
        return sum(
            TOKENS_PER_TOOL + self.count_text(json.dumps(tool, separators=(",", ":"), sort_keys=True))
            for tool in tools
        )

    def count_messages(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        total = REPLY_PRIMING_TOKENS + sum(self.count_message(m) for m in messages)
        if tools:
            total += self.count_tools(tools)
        return total


class EncodingCounter(_MessageCounting):
    """Exact counts with an offline tiktoken encoding (``cl100k_base``, ``o200k_base``)."""

    def __init__(self, encoding_name: str) -> None:
        super().__init__()
        self.encoding_name = encoding_name
        self._encode = get_encoding(encoding_name).encode_ordinary

    @property
    def exact(self) -> bool:
        return True

    def count_text(self, text: str) -> int:
        return len(self._encode(text)) if text else 0


class EstimatingCounter(_MessageCounting):
    """A labelled estimate for models without a local tokenizer (Claude, unknown names).

    Counts with ``o200k_base`` and scales by ``factor``: Claude's tokenizer produces
    more tokens than OpenAI's for the same text, so the default errs on the high side,
    which keeps budgets safe.
    """

    def __init__(self, factor: float = 1.2, base_encoding: str = "o200k_base") -> None:
        super().__init__()
        self.factor = factor
        self._base = EncodingCounter(base_encoding)

    @property
    def exact(self) -> bool:
        return False

    def count_text(self, text: str) -> int:
        if not text:
            return 0
        return int(self._base.count_text(text) * self.factor + 0.999)


@lru_cache(maxsize=256)
def counter_for_model(model: str | None) -> EncodingCounter | EstimatingCounter:
    """The best local counter for ``model``: exact for OpenAI models, else an estimate."""
    if model:
        model = model.rsplit("/", 1)[-1]  # "openai/gpt-4o", "azure/gpt-4o" style routes
        name = encoding_name_for_model(model)
        if name is not None:
            return _encoding_counter(name)
        if model.startswith(("claude", "anthropic")):
            return _estimating_counter(1.2)
    return _estimating_counter(1.1)


@lru_cache(maxsize=8)
def _encoding_counter(name: str) -> EncodingCounter:
    return EncodingCounter(name)


@lru_cache(maxsize=8)
def _estimating_counter(factor: float) -> EstimatingCounter:
    return EstimatingCounter(factor)
