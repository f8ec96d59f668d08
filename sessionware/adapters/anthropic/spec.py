"""The Anthropic provider's adapter: where to hook a client, and how to read its endpoints.

``spec_for`` gives the ``ProviderSpec`` of an ``Anthropic``/``AsyncAnthropic`` client:
one endpoint, Messages (``messages``; ``messages.*`` and ``beta.messages.*``).
``summary_request`` / ``summary_of`` are how ``ClientSummarizer`` asks such a client for a
summary.

The funnel is the client's ``_request``, not ``request`` (see the provider table): in
anthropic 2.x the body is prepared (``Omit`` removed, ``extra_body`` merged, one-shot
iterables read) between the two, and reading it any earlier could consume an iterator
the SDK still needs.
"""

from __future__ import annotations

from typing import Any

from sessionware.adapters.anthropic.messages import MessagesEndpoint, anthropic_usage
from sessionware.adapters.engine.types import Endpoint
from sessionware.core.accounting.usage import TokenUsage

__all__ = ["AnthropicSpec", "spec_for", "summary_of", "summary_request"]

_MESSAGES = MessagesEndpoint()


class AnthropicSpec:
    """How to read an Anthropic client's endpoints."""

    name = "anthropic"
    stream_usage = False

    def endpoint(self, method: str, url: str) -> Endpoint | None:
        if method.lower() != "post":
            return None
        path = url.split("?", 1)[0]
        return _MESSAGES if path == "/v1/messages" or path.endswith("/v1/messages") else None


def spec_for(client: Any) -> AnthropicSpec:
    """The spec for an ``Anthropic``/``AsyncAnthropic`` client."""
    return AnthropicSpec()


def summary_request(client: Any, *, model: str, instructions: str, text: str, max_tokens: int) -> Any:
    """A Messages call that summarises ``text`` (awaitable for async clients)."""
    return client.messages.create(
        model=model, max_tokens=max_tokens, system=instructions, messages=[{"role": "user", "content": text}]
    )


def summary_of(response: Any) -> tuple[str, TokenUsage | None]:
    texts = [getattr(b, "text", "") for b in response.content if getattr(b, "type", None) == "text"]
    return "".join(texts).strip(), anthropic_usage(getattr(response, "usage", None))
