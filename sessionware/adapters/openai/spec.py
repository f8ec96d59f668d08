"""The OpenAI provider's adapter: where to hook a client, and how to read its endpoints.

``spec_for`` gives the ``ProviderSpec`` of an ``OpenAI``/``AsyncOpenAI`` client or one of
their Azure twins (priced as ``azure``); its endpoints are chat completions and
embeddings (``chat``) and the Responses API (``responses``). ``summary_request`` /
``summary_of`` are how ``ClientSummarizer`` asks such a client for a summary.

Usage in chat streams: OpenAI sends it only when asked with
``stream_options.include_usage``. When the app did not ask, the adapter asks for it on
endpoints known to accept the option (api.openai.com; Azure from API version
2024-09-01) and hides the extra usage-only chunk from the app; elsewhere the usage is
estimated locally and labelled as such.
"""

from __future__ import annotations

import re
from typing import Any

from sessionware.adapters.engine.types import Endpoint
from sessionware.adapters.openai.chat import ChatEndpoint, EmbeddingsEndpoint
from sessionware.adapters.openai.responses import ResponsesEndpoint, openai_usage
from sessionware.core.accounting.usage import TokenUsage

__all__ = ["OpenAISpec", "spec_for", "summary_of", "summary_request"]

_AZURE_USAGE_SINCE = "2024-09-01"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

_ENDPOINTS: dict[str, Endpoint] = {
    "/chat/completions": ChatEndpoint(),
    "/responses": ResponsesEndpoint(),
    "/embeddings": EmbeddingsEndpoint(),
}


class OpenAISpec:
    """How to read an OpenAI client's endpoints."""

    def __init__(self, *, name: str = "openai", stream_usage: bool = True) -> None:
        self.name = name
        self.stream_usage = stream_usage

    def endpoint(self, method: str, url: str) -> Endpoint | None:
        if method.lower() != "post":
            return None
        found = _ENDPOINTS.get(url)
        if found is None and url.startswith(("http://", "https://", "/")):
            path = url.split("?", 1)[0]
            found = next((e for suffix, e in _ENDPOINTS.items() if path.endswith(suffix)), None)
        return found


def _accepts_stream_usage(client: Any, *, azure: bool) -> bool:
    if azure:
        version = str(getattr(client, "_api_version", "") or "")
        return not _DATE.match(version) or version >= _AZURE_USAGE_SINCE
    host = getattr(getattr(client, "base_url", None), "host", "")
    return host == "api.openai.com"


def spec_for(client: Any) -> OpenAISpec:
    """The spec for an ``OpenAI``/``AsyncOpenAI`` client (Azure ones priced as ``azure``)."""
    azure = any(c.__name__ in ("AzureOpenAI", "AsyncAzureOpenAI") for c in type(client).__mro__)
    return OpenAISpec(
        name="azure" if azure else "openai", stream_usage=_accepts_stream_usage(client, azure=azure)
    )


def summary_request(client: Any, *, model: str, instructions: str, text: str, max_tokens: int) -> Any:
    """A chat completion that summarises ``text`` (awaitable for async clients)."""
    return client.chat.completions.create(
        model=model,
        max_tokens=max_tokens,
        messages=[{"role": "system", "content": instructions}, {"role": "user", "content": text}],
    )


def summary_of(response: Any) -> tuple[str, TokenUsage | None]:
    message = response.choices[0].message
    return (message.content or "").strip(), openai_usage(getattr(response, "usage", None))
