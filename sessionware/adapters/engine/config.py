"""What a wrapped client is configured with, and the seam a wrapping mode plugs into.

``WrapConfig`` is one wrapped (or instrumented) client's settings; ``CallHooks`` is what
a mode other than observing (managed mode) implements; ``HiddenRound`` is a streamed round
such a mode consumed. See ``funnel`` for how the funnel uses them.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sessionware.adapters.engine.types import CallOutput, ProviderSpec
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.defaults import default_otel
from sessionware.core.session.registry import SessionRegistry, registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store
from sessionware.core.telemetry import OtelSettings

__all__ = ["CallHooks", "HiddenRound", "ResponseThreads", "WrapConfig"]


CallT_contra = TypeVar("CallT_contra", contravariant=True)


class CallHooks(Protocol[CallT_contra]):
    """What a wrapping mode does around one call (see ``funnel``'s docstring): ``CallT_contra`` is
    the call it is handed (``hooked.HookedCall``)."""

    def before_send(self, call: CallT_contra) -> Mapping[str, Any] | None: ...

    def after_response(self, call: CallT_contra, output: CallOutput) -> Mapping[str, Any] | None: ...


@dataclass(slots=True)
class HiddenRound:
    """A streamed round the app does not see, and the body of the round after it."""

    body: Mapping[str, Any]
    output: CallOutput
    first_token_at: float | None = None


class ResponseThreads:
    """Which session a provider-side response id belongs to (bounded, most recent kept)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, response_id: str, session_id: str) -> None:
        with self._lock:
            self._ids[response_id] = session_id
            if len(self._ids) > self.limit:
                self._ids.popitem(last=False)

    def get(self, response_id: str) -> str | None:
        return self._ids.get(response_id)


@dataclass
class WrapConfig:
    """How one wrapped client records."""

    spec: ProviderSpec
    session_id: str | None = None
    store: Store | None = None
    hooks: CallHooks[Any] | None = None
    max_rounds: int = 4
    prices: PriceBook | None = None
    enabled: bool = True
    fallback_session_id: str = field(default_factory=lambda: f"calls-{uuid.uuid4().hex[:16]}")
    """Where calls without a conversation (embeddings) go when no session is named."""
    threads: ResponseThreads = field(default_factory=ResponseThreads)
    otel: OtelSettings | bool | None = None
    """OpenTelemetry export: settings, False (off), or None (the process default)."""
    otel_inside: bool = False
    """The funnel hooked is another OpenTelemetry instrumentation's wrapper (Logfire's), whose
    span of each call carries its usage (set by the hook, see ``otel.instrumented_inside``)."""
    cache_key: bool = False
    """Whether calls get a ``prompt_cache_key`` (OpenAI's own API, see ``openai.cache_key``)."""
    _registry: tuple[Store, SessionRegistry] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _session: tuple[Store, str, SessionState, int] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def registry(self, store: Store) -> SessionRegistry:
        """The session registry of ``store`` (remembered: it is looked up on every call)."""
        known = self._registry
        if known is not None and known[0] is store:
            return known[1]
        registry = registry_for(store)
        self._registry = (store, registry)
        return registry

    def otel_settings(self) -> OtelSettings | None:
        """The OpenTelemetry export of this client's calls now, or None."""
        chosen = self.otel
        if chosen is None:
            return default_otel()
        return chosen if isinstance(chosen, OtelSettings) else (OtelSettings() if chosen else None)

    def live_state(self, store: Store, session_id: str) -> SessionState | None:
        """The live state of ``session_id`` in ``store``, or None when it must be opened.

        The last one is remembered (most calls of a client continue its last session) and
        trusted while the registry has forgotten nothing since.
        """
        registry = self.registry(store)
        known = self._session
        if (
            known is not None
            and known[1] == session_id
            and known[0] is store
            and known[3] == registry.generation
        ):
            return known[2]
        state = registry.cached(session_id)
        if state is not None:
            self._session = (store, session_id, state, registry.generation)
        return state
