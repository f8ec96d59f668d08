"""``ManagedLiteLLM``: LiteLLM's ``completion`` / ``acompletion`` in managed mode.

Two ways to use one (see ``sessionware.adapters.litellm.managed``):

* call its ``completion`` / ``acompletion``, which take LiteLLM's arguments and return
  what LiteLLM returns (a ``ModelResponse``; a ``ManagedStream`` of LiteLLM's chunks for
  ``stream=True``);
* ``install()`` it: ``litellm.completion`` and ``litellm.acompletion`` become managed
  for every caller that looks them up on the module (``litellm.completion(...)``, a
  ``Router``), until ``uninstall()`` or the end of a ``with`` block. Installing twice
  changes nothing; installing another handle replaces this one (with a warning).
  Names imported before ``install()`` (``from litellm import completion``) keep
  LiteLLM's own function.

The rounds themselves are ``litellm.rounds.ManagedRounds``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import logging
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.litellm.rounds import LiteLLMSpec, ManagedRounds, sending
from sessionware.adapters.managed.hooks import ManagedHooks
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.store.store import Store

__all__ = ["ManagedLiteLLM"]

logger = logging.getLogger(__name__)

_MARK = "__sessionware_managed__"
_ENTRY_POINTS = ("completion", "acompletion")
_install_lock = threading.RLock()


def _keywords(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's arguments by name (apps pass ``model`` and ``messages`` by position)."""
    if not args:
        return kwargs
    if len(args) <= 2:
        return {**dict(zip(("model", "messages"), args, strict=False)), **kwargs}
    bound = inspect.signature(original).bind_partial(*args, **kwargs)
    named = dict(bound.arguments)
    named.update(named.pop("kwargs", None) or {})
    return named


class ManagedLiteLLM:
    """LiteLLM chat calls with the context built by the session's virtual memory.

    Made by ``sessionware.adapters.litellm.managed(...)``; see there for the settings.

    >>> from sessionware.adapters.litellm import managed
    >>> handle = managed(budget=4000)
    >>> handle.policy.budget
    4000
    """

    def __init__(
        self,
        *,
        policy: ContextPolicy,
        store: Store | None = None,
        session_id: str | None = None,
        prices: PriceBook | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.session_id = session_id
        self.prices = prices
        self.hooks = ManagedHooks(policy)
        self._fallback = f"calls-{uuid.uuid4().hex[:16]}"
        self._configs: dict[str, WrapConfig] = {}
        self._rounds = ManagedRounds(self._config_for)
        self._patches: dict[str, Callable[..., Any]] = {}

    @property
    def rounds(self) -> ManagedRounds:
        """What drives this handle's calls (the LiteLLM proxy's managed hook sends through it)."""
        return self._rounds

    # -- calls ------------------------------------------------------------------------------

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        """``litellm.completion`` in managed mode (same arguments, same return types)."""
        original = self._original("completion")
        return self._call(original, args, kwargs)

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        """``litellm.acompletion`` in managed mode (same arguments, same return types)."""
        original = self._original("acompletion")
        return await self._acall(original, args, kwargs)

    def _call(self, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        named = _keywords(original, args, kwargs)
        return self._rounds.completion(original, named.pop("model", None), named.pop("messages", None), named)

    async def _acall(
        self, original: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        named = _keywords(original, args, kwargs)
        model, messages = named.pop("model", None), named.pop("messages", None)
        return await self._rounds.acompletion(original, model, messages, named)

    @staticmethod
    def _original(name: str) -> Callable[..., Any]:
        """LiteLLM's own entry point, under any managed patch of ours."""
        function: Any = getattr(importlib.import_module("litellm"), name)
        while getattr(function, _MARK, None) is not None:
            function = function.__wrapped__
        return function  # type: ignore[no-any-return]

    def _config_for(self, body: Mapping[str, Any], provider: str) -> WrapConfig:
        config = self._configs.get(provider)
        if config is None:
            config = WrapConfig(
                spec=LiteLLMSpec(provider),
                session_id=self.session_id,
                store=self.store,
                hooks=self.hooks,
                max_rounds=self.hooks.max_hidden_rounds,
                prices=self.prices,
                fallback_session_id=self._fallback,
            )
            self._configs[provider] = config
        metadata = body.get("metadata")
        named = metadata.get("session_id") if isinstance(metadata, dict) else None
        named = named or body.get("litellm_session_id")
        if named:
            # The call names its session, as it does for ``SessionCallback``.
            return dataclasses.replace(config, session_id=str(named))
        return config

    # -- installing into litellm -------------------------------------------------------------

    @property
    def installed(self) -> bool:
        """True while ``litellm.completion`` / ``acompletion`` are this handle's."""
        litellm = sys.modules.get("litellm")
        return litellm is not None and any(
            getattr(getattr(litellm, name, None), _MARK, None) is self for name in _ENTRY_POINTS
        )

    def install(self) -> ManagedLiteLLM:
        """Make ``litellm.completion`` / ``acompletion`` managed (idempotent); returns self.

        >>> import litellm  # doctest: +SKIP
        >>> handle = managed(budget=4000).install()  # doctest: +SKIP
        >>> litellm.completion(model="gpt-4o-mini", messages=history)  # doctest: +SKIP
        >>> handle.uninstall()  # doctest: +SKIP
        True
        """
        litellm = importlib.import_module("litellm")
        with _install_lock:
            for name in _ENTRY_POINTS:
                current = getattr(litellm, name)
                owner = getattr(current, _MARK, None)
                if owner is self:
                    continue
                if isinstance(owner, ManagedLiteLLM):
                    logger.warning("litellm.%s was managed by another handle; it is replaced", name)
                    owner.uninstall()
                    current = getattr(litellm, name)
                patch = self._patch(name, current)
                self._patches[name] = patch
                setattr(litellm, name, patch)
        return self

    def uninstall(self) -> bool:
        """Put LiteLLM's own functions back; False when this handle was not installed.

        If something replaced a patched function after ``install()`` (another library
        wrapping it), that wrapper is left in place and ours inside it passes calls
        straight through instead.
        """
        litellm = sys.modules.get("litellm")
        with _install_lock:
            patches, self._patches = self._patches, {}
            if litellm is None or not patches:
                return False
            for name, patch in patches.items():
                if getattr(litellm, name, None) is patch:
                    setattr(litellm, name, patch.__wrapped__)
                else:
                    logger.warning(
                        "litellm.%s was replaced after sessionware patched it; sessionware's managed "
                        "mode is switched off inside it instead of removed",
                        name,
                    )
            return True

    def __enter__(self) -> ManagedLiteLLM:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _patch(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        make = self._apatched if name == "acompletion" else self._patched
        patch = make(name, original)
        setattr(patch, _MARK, self)
        return patch

    def _live(self, name: str, patch: Callable[..., Any]) -> bool:
        """Whether ``patch`` manages its call (installed, and not a round we are sending)."""
        return self._patches.get(name) is patch and not sending()

    def _patched(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def completion(*args: Any, **kwargs: Any) -> Any:
            if not self._live(name, completion):
                return original(*args, **kwargs)
            return self._call(original, args, kwargs)

        return completion

    def _apatched(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def acompletion(*args: Any, **kwargs: Any) -> Any:
            if not self._live(name, acompletion):
                return await original(*args, **kwargs)
            return await self._acall(original, args, kwargs)

        return acompletion
