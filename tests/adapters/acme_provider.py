"""The adapter of ``acme_sdk``: a third provider, added the way any provider is.

Its own folder (here this one module, in the tests) and one row of the provider table
(``ACME``, added with ``add_provider``); no file of sessionware names it. The module is
the row's ``ProviderAdapter``: ``spec_for`` and the two steps of a summary call. Acme's
chat endpoint speaks the OpenAI-compatible wire format, so its reader is the one of
OpenAI chat completions (and managed mode can shape its requests).
"""

from __future__ import annotations

from typing import Any

from sessionware.adapters.engine.types import Endpoint
from sessionware.adapters.openai.chat import ChatEndpoint
from sessionware.adapters.openai.responses import openai_usage
from sessionware.adapters.providers import Client, ProviderRow, VersionRange
from sessionware.core.accounting.usage import TokenUsage

ACME = ProviderRow(
    "acme_sdk",
    clients=(Client("Acme", is_async=False), Client("AsyncAcme", is_async=True)),
    funnel="request",
    adapter=__name__,
    versions=VersionRange((1, 2), (2,)),
)

_CHAT = ChatEndpoint()


class AcmeSpec:
    name = "acme"
    stream_usage = False

    def endpoint(self, method: str, url: str) -> Endpoint | None:
        return _CHAT if method.lower() == "post" and url.endswith("/chat/completions") else None


def spec_for(client: Any) -> AcmeSpec:
    return AcmeSpec()


def summary_request(client: Any, *, model: str, instructions: str, text: str, max_tokens: int) -> Any:
    return client.chat.create(
        model=model,
        max_tokens=max_tokens,
        messages=[{"role": "system", "content": instructions}, {"role": "user", "content": text}],
    )


def summary_of(response: Any) -> tuple[str, TokenUsage | None]:
    return (response.choices[0].message.content or "").strip(), openai_usage(response.usage)
