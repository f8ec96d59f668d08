"""``acme_sdk``: a small LLM SDK that is none of sessionware's built-in providers.

Like many vendors' SDKs, it speaks the OpenAI-compatible chat wire format
(``POST /v1/chat/completions``) through a client of its own: no OpenAI or Anthropic
code. What the adapters need of it is what such SDKs have: one request method every call
goes through with the final method, URL and JSON body (``Acme.request``), and response
objects of its own (pydantic models). Nothing here knows about sessionware.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

__version__ = "1.4.2"


class AcmeError(Exception):
    """An error answer of the API."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Options:
    """One request, as the client's request method receives it."""

    method: str
    url: str
    json_data: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def model_copy(self, *, update: dict[str, Any]) -> Options:
        return replace(self, **update)


class Function(BaseModel):
    name: str
    arguments: str


class ToolCall(BaseModel):
    id: str
    type: str = "function"
    function: Function


class Message(BaseModel):
    role: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(BaseModel):
    index: int = 0
    message: Message
    finish_reason: str | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(BaseModel):
    """A chat completion, as the API answers it (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")

    id: str
    model: str
    choices: list[Choice]
    usage: Usage | None = None


def _answer(response: httpx.Response) -> Completion:
    if response.status_code >= 400:
        raise AcmeError(response.status_code, response.text)
    return Completion.model_validate_json(response.content)


class _Chat:
    def __init__(self, client: Any) -> None:
        self._client = client

    def create(self, *, model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
        """A chat completion (a coroutine for ``AsyncAcme``)."""
        body = {"model": model, "messages": messages, **params}
        return self._client.request(None, Options("post", "/v1/chat/completions", body))


class Acme:
    """The sync client: ``Acme(api_key=..., transport=...).chat.create(model=..., messages=[...])``."""

    def __init__(self, *, api_key: str, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(
            base_url="https://api.acme.test", transport=transport, headers={"authorization": api_key}
        )
        self.chat = _Chat(self)

    def request(self, cast_to: Any, options: Options, *, stream: bool = False, stream_cls: Any = None) -> Any:
        sent = self._http.request(
            options.method, options.url, json=options.json_data, headers=options.headers
        )
        return _answer(sent)

    def close(self) -> None:
        self._http.close()


class AsyncAcme:
    """The async twin: ``await AsyncAcme(...).chat.create(...)``."""

    def __init__(self, *, api_key: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(
            base_url="https://api.acme.test", transport=transport, headers={"authorization": api_key}
        )
        self.chat = _Chat(self)

    async def request(
        self, cast_to: Any, options: Options, *, stream: bool = False, stream_cls: Any = None
    ) -> Any:
        sent = await self._http.request(
            options.method, options.url, json=options.json_data, headers=options.headers
        )
        return _answer(sent)

    async def aclose(self) -> None:
        await self._http.aclose()
