"""``wrap`` and ``unwrap``: the drop-in front door.

>>> import sessionware
>>> from openai import OpenAI
>>> client = sessionware.wrap(OpenAI(api_key="sk-..."))   # the same object, now recorded
>>> sessionware.unwrap(client) is client
True

Nothing else in the app changes: every call the client makes (``chat.completions``,
``responses``, ``embeddings``, their ``parse``/``stream()`` helpers, ``with_raw_response``
and ``with_streaming_response``) is recorded into a session. See ``session()`` for
choosing the session from the calling code.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from sessionware.adapters import providers
from sessionware.adapters.engine import install
from sessionware.adapters.engine.background import settle
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.guard import AdapterHealth, health, set_strict
from sessionware.adapters.engine.types import ProviderSpec
from sessionware.adapters.instrument.versions import check_supported
from sessionware.adapters.mode import WrapMode, parse_mode
from sessionware.adapters.openai.cache_key import accepts_cache_key
from sessionware.adapters.tools import is_tool_processor
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.storable import check_session_id
from sessionware.core.store.url import StoreLike, open_store
from sessionware.core.telemetry import OtelSettings

if TYPE_CHECKING:
    from sessionware.core.memory.policy import ContextPolicy

__all__ = ["AdapterHealth", "WrapMode", "health", "is_wrapped", "set_strict", "settle", "unwrap", "wrap"]

ClientT = TypeVar("ClientT")


def _supported() -> str:
    names = [f"{row.name}.{client.path}" for row in providers.providers() for client in row.clients]
    return (
        f"{', '.join(names[:-1])} and {names[-1]} clients (and their subclasses, such as openai.AzureOpenAI)"
    )


def _classify(client: Any) -> tuple[ProviderSpec, str, bool]:
    """The provider spec of a supported client, its funnel, and whether it is async."""
    found = providers.row_of_client(client)
    if found is None:
        kind = type(client)
        raise TypeError(
            f"sessionware.wrap supports {_supported()}, not {kind.__module__}.{kind.__qualname__}"
        )
    row, known = found
    module = sys.modules.get(row.name)
    if module is not None:
        check_supported(row.name, module, patching=False)
    return providers.adapter_of(row).spec_for(client), row.funnel, known.is_async


def wrap(
    client: ClientT,
    *,
    session_id: str | None = None,
    store: StoreLike = None,
    mode: WrapMode | str = WrapMode.OBSERVE,
    context: ContextPolicy | None = None,
    otel: bool | OtelSettings | None = None,
) -> ClientT:
    """Record every call ``client`` makes; return the same client object.

    ``session_id`` records every call into that session. Without it, a surrounding
    ``with sessionware.session("id"):`` decides, else each conversation gets its own
    session, identified by its system prompt and first user message (so an app that
    re-sends its history groups into one session per conversation).

    ``store`` is a URL (``sqlite:///chat.db``), a ``Store`` or a backend; by default the
    process's default store at the time of each call. Wrapping a wrapped client again
    only updates these settings, so nothing is recorded twice.

    A chuk-tool-processor ``ToolProcessor`` is wrapped the same way: every tool it
    executes is logged in the current session (see ``sessionware.adapters.tools``).

    ``mode="managed"`` also replaces what is sent: a context built by the session's
    virtual memory inside the budget of ``context`` (a ``ContextPolicy``; by default the
    model's context window), with memory calls served out of the app's sight (see
    ``sessionware.adapters.managed``). Switching a wrapped client between modes keeps
    its sessions: managed mode picks up the history recorded so far.

    On OpenAI's own API, chat and Responses calls get a ``prompt_cache_key`` derived from
    their session unless the app set one, so a session's calls share a cache shard.

    ``otel=True`` (or ``OtelSettings(...)``) also exports each call as OpenTelemetry
    spans after the GenAI conventions (``sessionware.adapters.otel``); ``False`` keeps
    this client out of a process-wide ``configure(otel=True)``.

    >>> from anthropic import Anthropic
    >>> client = wrap(Anthropic(api_key="sk-ant-..."), session_id="support-42")
    >>> isinstance(client, Anthropic)
    True
    """
    wrap_mode = parse_mode(mode, "wrap")
    if is_tool_processor(client):
        # A chuk-tool-processor ToolProcessor: its executions are logged (observe only).
        if wrap_mode is not WrapMode.OBSERVE or context is not None or otel:
            raise InvalidSessionOperation(
                "wrap", "a tool processor is only observed: no mode, context or otel"
            )
        from sessionware.adapters.tools.processor import wrap_processor

        return wrap_processor(client, session_id=session_id, store=open_store(store) if store else None)  # type: ignore[no-any-return]
    if context is not None and wrap_mode is WrapMode.OBSERVE:
        raise InvalidSessionOperation(
            "wrap", "context= configures managed mode; observe mode sends what the app built"
        )
    if session_id is not None:
        check_session_id(session_id, "wrap")
    spec, funnel, is_async = _classify(client)
    config = WrapConfig(
        spec=spec,
        session_id=session_id,
        store=open_store(store) if store is not None else None,
        otel=otel,
        cache_key=accepts_cache_key(client),
    )
    if wrap_mode is WrapMode.MANAGED:
        from sessionware.adapters.managed.hooks import ManagedHooks
        from sessionware.core.memory.policy import ContextPolicy

        hooks = ManagedHooks(context if context is not None else ContextPolicy())
        config.hooks, config.max_rounds = hooks, hooks.max_hidden_rounds
    install.install(client, config, funnel=funnel, is_async=is_async, derive=_derived_config)
    return client


def _derived_config(client: Any, config: WrapConfig) -> WrapConfig:
    """A client made from a wrapped one (``copy``, ``with_options``, ``copy.copy``) records
    with the same settings and reads its own provider details: its base URL may be another
    server, which decides whether calls get a ``prompt_cache_key`` or are asked for usage."""
    spec, _, _ = _classify(client)
    return dataclasses.replace(config, spec=spec, cache_key=accepts_cache_key(client), enabled=True)


def unwrap(client: ClientT) -> ClientT:
    """Undo ``wrap``: the client's methods are its own again. A no-op on unwrapped clients.

    >>> from openai import OpenAI
    >>> plain = OpenAI(api_key="sk-...")
    >>> unwrap(wrap(plain)) is plain
    True
    """
    if is_tool_processor(client):
        from sessionware.adapters.tools.processor import unwrap_processor

        return unwrap_processor(client)  # type: ignore[no-any-return]
    install.uninstall(client)
    return client


def is_wrapped(client: Any) -> bool:
    """True while ``client`` is wrapped by sessionware."""
    if is_tool_processor(client):
        from sessionware.adapters.tools.processor import is_wrapped_processor

        return is_wrapped_processor(client)
    config = install.installed_config(client)
    return config is not None and config.enabled
