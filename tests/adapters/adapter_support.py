"""Helpers for the adapter tests: clients on fake transports, reading what was recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import httpx2
import openai

from sessionware.adapters.api import settle
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, sse
from sessionware.core.session.enums import EventType
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store

OPENAI_KINDS = ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI")
ANTHROPIC_KINDS = ("Anthropic", "AsyncAnthropic")
ASYNC_KINDS = {"AsyncOpenAI", "AsyncAzureOpenAI", "AsyncAnthropic"}


def make_openai(kind: str, api: FakeOpenAI, **kwargs: Any) -> Any:
    transport = api.transport()
    sync_http = httpx.Client(transport=transport)
    async_http = httpx.AsyncClient(transport=transport)
    api_version = kwargs.pop("api_version", "2024-10-21")
    common: dict[str, Any] = {"api_key": "test-key", "max_retries": 0, **kwargs}
    if kind == "OpenAI":
        return openai.OpenAI(http_client=sync_http, **common)
    if kind == "AsyncOpenAI":
        return openai.AsyncOpenAI(http_client=async_http, **common)
    azure = {"api_version": api_version, "azure_endpoint": "https://example-resource.openai.azure.com"}
    if kind == "AzureOpenAI":
        return openai.AzureOpenAI(http_client=sync_http, **azure, **common)
    if kind == "AsyncAzureOpenAI":
        return openai.AsyncAzureOpenAI(http_client=async_http, **azure, **common)
    raise ValueError(kind)


def make_anthropic(kind: str, api: FakeAnthropic, **kwargs: Any) -> Any:
    transport = api.transport()
    common: dict[str, Any] = {"api_key": "test-key", "max_retries": 0, **kwargs}
    if kind == "Anthropic":
        return anthropic.Anthropic(http_client=httpx2.Client(transport=transport), **common)
    if kind == "AsyncAnthropic":
        return anthropic.AsyncAnthropic(http_client=httpx2.AsyncClient(transport=transport), **common)
    raise ValueError(kind)


def session_events(store: Store, session_id: str) -> list[SessionEvent]:
    """Events of a session as the store holds them (after abandoned streams are recorded)."""
    assert settle()
    store.flush()
    return store.load(session_id).events


def only_session(store: Store) -> str:
    """The id of the one session in ``store`` (fails if there are more or none)."""
    assert settle()
    store.flush()
    infos = store.list_sessions()
    assert len(infos) == 1, [i.id for i in infos]
    return infos[0].id


def calls(events: list[SessionEvent]) -> list[SessionEvent]:
    """Events that record a provider call (an answer, an error, an embedding)."""
    return [e for e in events if e.source.value == "llm" and (e.usage is not None or e.error is not None)]


def conversation(events: list[SessionEvent]) -> list[tuple[str, Any]]:
    return [(e.role.value if e.role else "", e.content) for e in events if e.type is EventType.MESSAGE]


def live_events(store: Store, session_id: str) -> list[SessionEvent]:
    state = registry_for(store).cached(session_id)
    assert state is not None
    return list(state.events)


Factory = Callable[..., Any]


def n_calls(store: Store) -> int:
    """LLM calls recorded in the store, over all sessions, once the recorder settled."""
    assert settle()
    store.flush()
    return sum(info.totals.llm_calls for info in store.list_sessions())


def the_call(store: Store) -> Any:
    """The one LLM call event of the store's only session."""
    [event] = calls(session_events(store, only_session(store)))
    return event


def sse_response(http: Any, events: list[dict[str, Any]], *, named: bool = False) -> Any:
    """An HTTP handler (for ``http``, httpx or httpx2) answering with these events as SSE."""
    return lambda request: http.Response(
        200, content=sse(events, named=named, done=not named), headers={"content-type": "text/event-stream"}
    )
