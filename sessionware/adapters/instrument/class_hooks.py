"""Request-funnel hooks put on client **classes** by ``instrument()``.

A class hook replaces e.g. ``openai.OpenAI.request``. On each call it looks up the
client's binding: the same per-client funnel ``wrap()`` installs (``funnel``), built on
first use from the current settings and kept on the client, so the SDK's own spec
reading (Azure pricing, whether a stream may be asked for its usage) stays per client.
With instrumentation off (``settings is None``) the hook calls the original at once,
which is what a hook still held by someone (a wrapped client that captured it) does
after ``uninstrument()``.

Double recording cannot happen: a client wrapped with ``wrap()`` calls the class hook
from inside its own funnel, and the funnel lets nested calls pass through.
"""

from __future__ import annotations

import functools
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.config import CallHooks, ResponseThreads, WrapConfig
from sessionware.adapters.engine.funnel import afunnel_hook, funnel_hook
from sessionware.adapters.engine.install import installed_config
from sessionware.adapters.engine.types import ProviderSpec
from sessionware.adapters.openai.cache_key import accepts_cache_key
from sessionware.core.store.store import Store

__all__ = ["ClassHooks", "HookSettings", "make_class_hook"]

_BINDING_ATTR = "_sessionware_instrumented"
HOOK_MARK = "__sessionware_hook__"

SpecFor = Callable[[Any], ProviderSpec]


@dataclass(frozen=True, slots=True)
class HookSettings:
    """How instrumented clients record; replaced as a whole when settings change."""

    store: Store | None
    session_id: str | None
    hooks: CallHooks[Any] | None = None
    max_rounds: int = 4
    threads: ResponseThreads = field(default_factory=ResponseThreads)
    fallback_session_id: str = field(default_factory=lambda: f"calls-{uuid.uuid4().hex[:16]}")


class ClassHooks:
    """The settings every class hook of one ``Instrumentor`` reads.

    A mode whose hooks take calls earlier (managed mode's resource methods, see
    ``CallHooks``'s optional ``attach``) hooks each client when its binding is made; those
    bindings' configurations are switched off when the settings change, so the earlier
    hooks of a client made under old settings pass through.
    """

    def __init__(self) -> None:
        self._settings: HookSettings | None = None
        self._attached: list[weakref.ref[WrapConfig]] = []

    @property
    def settings(self) -> HookSettings | None:
        return self._settings

    @settings.setter
    def settings(self, settings: HookSettings | None) -> None:
        if settings is not self._settings:
            for ref in self._attached:
                config = ref()
                if config is not None:
                    config.enabled = False
            self._attached = []
        self._settings = settings

    def binding(
        self, client: Any, original: Callable[..., Any], spec_for: SpecFor, *, is_async: bool
    ) -> Callable[..., Any] | None:
        """The funnel of ``client`` under the current settings (None: instrumentation off)."""
        settings = self.settings
        if settings is None:
            return None
        attrs = getattr(client, "__dict__", None)
        if attrs is not None:
            cached = attrs.get(_BINDING_ATTR)
            # A shallow copy (copy.copy, as anthropic's environments worker makes to change
            # max_retries or middleware) carries the original's binding in its __dict__:
            # only the client it was built for may use it, else the copy sends through the
            # original with the original's settings.
            if cached is not None and cached[0] is settings and cached[2] == id(client):
                hook: Callable[..., Any] = cached[1]
                return hook
        config = WrapConfig(
            spec=spec_for(client),
            session_id=settings.session_id,
            store=settings.store,
            hooks=settings.hooks,
            max_rounds=settings.max_rounds,
            threads=settings.threads,
            fallback_session_id=settings.fallback_session_id,
            cache_key=accepts_cache_key(client),
        )
        bound = functools.partial(original, client)
        hook = afunnel_hook(config, bound) if is_async else funnel_hook(config, bound)
        if attrs is not None:
            # Kept on the client, not in a global map, so nothing outlives it.
            attrs[_BINDING_ATTR] = (settings, hook, id(client))
            attach = getattr(settings.hooks, "attach", None)
            if attach is not None and installed_config(client) is None:  # wrap()'s own hooks win
                attach(client, config, is_async=is_async)
                self._attached = [r for r in self._attached if r() is not None]
                self._attached.append(weakref.ref(config))
        return hook


def make_class_hook(
    owner: ClassHooks, original: Callable[..., Any], spec_for: SpecFor, *, is_async: bool
) -> Callable[..., Any]:
    """The function to put on the class in place of ``original`` (its request method)."""

    def bind(client: Any) -> Callable[..., Any] | None:
        try:
            return owner.binding(client, original, spec_for, is_async=is_async)
        except Exception as exc:
            guard.report("an instrumented client", exc)
            return None

    if is_async:

        @functools.wraps(original)
        async def arequest(self: Any, cast_to: Any, options: Any, **kwargs: Any) -> Any:
            hook = bind(self)
            if hook is None:
                return await original(self, cast_to, options, **kwargs)
            result: Awaitable[Any] = hook(cast_to, options, **kwargs)
            return await result

        setattr(arequest, HOOK_MARK, True)
        return arequest

    @functools.wraps(original)
    def request(self: Any, cast_to: Any, options: Any, **kwargs: Any) -> Any:
        hook = bind(self)
        if hook is None:
            return original(self, cast_to, options, **kwargs)
        return hook(cast_to, options, **kwargs)

    setattr(request, HOOK_MARK, True)
    return request
