"""``instrument()`` / ``uninstrument()``: record every OpenAI, Anthropic and LiteLLM call
of the process, without touching the code that makes them.

>>> import sessionware
>>> sessionware.instrument(store="sqlite:///sessions.db")  # doctest: +SKIP
>>> from openai import OpenAI          # imported before or after: both are covered
>>> OpenAI().chat.completions.create(...)  # doctest: +SKIP
>>> sessionware.uninstrument()  # doctest: +SKIP

What is patched is declared once, in the provider table (``providers``): each row's
request funnel on its client classes (``OpenAI``, ``AsyncOpenAI`` and so their Azure
subclasses, ``Anthropic``, ``AsyncAnthropic``, and any provider added with
``add_provider``), so clients created earlier are covered too; and a
``SessionCallback`` added to LiteLLM's callbacks (in managed mode, also a managed
``litellm.completion`` / ``acompletion``: ``sessionware.adapters.litellm.managed``).
A module not imported yet is patched by a post-import hook the moment it is.
``uninstrument()`` walks what was patched in reverse and puts back exactly what was
there (an attribute that was inherited is deleted again, not set to the inherited
value). A module outside its supported version range is left alone, with a warning. A
client also wrapped with ``wrap()`` records each call once, with the wrapper's settings.

Importing this module loads only the standard library; the adapters are imported when
the first SDK is.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from sessionware.adapters.instrument.import_hooks import PostImportFinder
from sessionware.adapters.instrument.versions import check_supported
from sessionware.adapters.mode import WrapMode, parse_mode
from sessionware.adapters.providers import (
    PatchKind,
    PatchTarget,
    Provider,
    adapter_of,
    patch_targets,
    provider_named,
    providers,
)
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.telemetry import OtelSettings

if TYPE_CHECKING:
    from sessionware.adapters.instrument.class_hooks import ClassHooks, HookSettings
    from sessionware.core.memory.policy import ContextPolicy
    from sessionware.core.store.url import StoreLike

__all__ = ["Instrumentor", "default_instrumentor", "instrument", "is_instrumented", "uninstrument"]

logger = logging.getLogger(__name__)

_MISSING: Any = object()


class _Config(NamedTuple):
    store: StoreLike
    session_id: str | None
    providers: frozenset[str]
    managed: bool = False
    budget: int | None = None
    context: ContextPolicy | None = None


class _Patch(NamedTuple):
    """One applied patch target: where, what was there before, what we put."""

    target: PatchTarget
    owner: Any
    previous: Any
    """``owner.__dict__[attribute]`` before (``_MISSING`` when it was inherited)."""
    installed: Any


def _resolve(module: ModuleType, path: str) -> Any:
    owner: Any = module
    for part in path.split(".") if path else ():
        owner = getattr(owner, part)
    return owner


class Instrumentor:
    """Patches the targets of one table in and out; ``instrument()`` uses the default one."""

    def __init__(self, table: Iterable[PatchTarget] | None = None) -> None:
        self.table = tuple(table) if table is not None else None
        """The targets to patch (None: the provider table's, read at each ``instrument``)."""
        self._lock = threading.RLock()
        self._config: _Config | None = None
        self._settings: HookSettings | None = None
        self._patches: list[_Patch] = []
        self._finder: PostImportFinder | None = None
        self._class_hooks: ClassHooks | None = None

    @property
    def active(self) -> bool:
        return self._config is not None

    def patched(self) -> list[str]:
        """The targets currently patched, as ``module.Class.attribute``."""
        with self._lock:
            return [p.target.describe() for p in self._patches]

    # -- in ------------------------------------------------------------------------------

    def instrument(self, config: _Config) -> None:
        with self._lock:
            if self._config is not None:
                if config == self._config:
                    logger.warning("sessionware is already instrumented with these settings")
                    return
                logger.warning("sessionware is already instrumented; re-instrumenting with the new settings")
                self._undo()
            self._config = config
            try:
                pending: dict[str, Callable[[ModuleType], None]] = {}
                for provider in sorted(config.providers):
                    module = sys.modules.get(provider)
                    if module is not None:
                        self._patch_module(provider, module)
                    else:
                        pending[provider] = self._on_import
                if pending:
                    self._finder = PostImportFinder(pending, self._import_failed)
                    self._finder.install()
            except BaseException:
                self._undo()
                raise

    def _hook_settings(self) -> HookSettings:
        """The settings patched code records with (the store is opened on first need)."""
        if self._settings is None:
            from sessionware.adapters.instrument.class_hooks import HookSettings
            from sessionware.core.store.url import open_store

            config = self._config
            assert config is not None
            hooks, max_rounds = _managed_hooks(config) if config.managed else (None, 4)
            self._settings = HookSettings(
                store=open_store(config.store) if config.store is not None else None,
                session_id=config.session_id,
                hooks=hooks,
                max_rounds=max_rounds,
            )
        return self._settings

    def _on_import(self, module: ModuleType) -> None:
        with self._lock:
            if self._config is None:
                return
            self._patch_module(module.__name__, module)

    def _import_failed(self, name: str, exc: BaseException) -> None:
        # A post-import hook must never break the app's import: say so once, stop.
        first = str(exc).splitlines()[0] if str(exc) else ""
        logger.warning(
            "sessionware could not instrument %s (%s: %s); calls are not recorded",
            name,
            type(exc).__name__,
            first,
        )
        with self._lock:
            self._undo()

    def _patch_module(self, provider: str, module: ModuleType) -> None:
        if any(p.target.provider == provider for p in self._patches):
            return
        if not check_supported(provider, module, patching=True):
            return
        for target in self.table if self.table is not None else patch_targets():
            if target.provider != provider:
                continue
            try:
                self._apply(target, module)
            except AttributeError as exc:
                # A release that moved or dropped this class: patch the rest.
                logger.warning("sessionware cannot patch %s (%s); skipped", target.describe(), exc)

    def _apply(self, target: PatchTarget, module: ModuleType) -> None:
        owner = _resolve(module, target.owner)
        if target.kind is PatchKind.CALLBACK:
            self._add_callback(target, owner)
            return
        from sessionware.adapters.instrument.class_hooks import HOOK_MARK, ClassHooks, make_class_hook

        current = getattr(owner, target.attribute)
        if getattr(current, HOOK_MARK, False):
            logger.warning("%s is already patched by sessionware; left as it is", target.describe())
            return
        if self._class_hooks is None:
            self._class_hooks = ClassHooks()
        self._class_hooks.settings = self._hook_settings()
        hook = make_class_hook(
            self._class_hooks,
            current,
            _spec_for(target.provider),
            is_async=target.kind is PatchKind.ASYNC_FUNNEL,
        )
        previous = vars(owner).get(target.attribute, _MISSING)
        setattr(owner, target.attribute, hook)
        self._patches.append(_Patch(target, owner, previous, hook))

    def _add_callback(self, target: PatchTarget, litellm: Any) -> None:
        from sessionware.adapters.litellm import callback as adapter

        settings = self._hook_settings()
        config = self._config
        if config is not None and config.managed:
            # LiteLLM has no pre-call hook that can change messages: managed mode wraps
            # ``litellm.completion`` / ``acompletion`` (reversibly) instead.
            handle = adapter.managed(
                context=_policy(config), store=settings.store, session_id=settings.session_id
            ).install()
            self._patches.append(_Patch(target, litellm, None, handle))
        if adapter.is_registered(litellm):
            return  # the app registered its own SessionCallback: it records
        callback = adapter.SessionCallback(store=settings.store, session_id=settings.session_id)
        # Also in LiteLLM's per-event lists: an app that later assigns one of the lists
        # (``litellm.callbacks = [...]``) keeps calls recorded through the others.
        added = []
        for name in adapter.CALLBACK_LISTS:
            entries = getattr(litellm, name, None)
            if isinstance(entries, list):
                entries.append(callback)
                added.append(name)
        self._patches.append(_Patch(target, litellm, tuple(added), callback))

    # -- out -----------------------------------------------------------------------------

    def uninstrument(self) -> bool:
        with self._lock:
            if self._config is None:
                logger.warning("sessionware is not instrumented; nothing to undo")
                return False
            self._undo()
            return True

    def _undo(self) -> None:
        """Walk the applied patches backwards, putting back what was there."""
        self._config = None
        if self._finder is not None:
            self._finder.remove()
            self._finder = None
        if self._class_hooks is not None:
            self._class_hooks.settings = None
        while self._patches:
            patch = self._patches.pop()
            if patch.target.kind is PatchKind.CALLBACK:
                self._remove_callback(patch)
            else:
                self._restore(patch)
        self._settings = None

    @staticmethod
    def _restore(patch: _Patch) -> None:
        name = patch.target.attribute
        if vars(patch.owner).get(name) is not patch.installed:
            logger.warning(
                "%s was replaced after sessionware patched it; sessionware's hook is switched off "
                "instead of removed",
                patch.target.describe(),
            )
            return
        if patch.previous is _MISSING:
            delattr(patch.owner, name)
        else:
            setattr(patch.owner, name, patch.previous)

    @staticmethod
    def _remove_callback(patch: _Patch) -> None:
        from sessionware.adapters.litellm import callback as adapter

        if isinstance(patch.installed, adapter.ManagedLiteLLM):
            patch.installed.uninstall()
            return
        # LiteLLM copies ``callbacks`` into its per-event lists on each call: take ours
        # out of every list it can be in.
        for name in adapter.CALLBACK_LISTS:
            entries = getattr(patch.owner, name, None)
            if isinstance(entries, list):
                entries[:] = [e for e in entries if e is not patch.installed]


def _policy(config: _Config) -> ContextPolicy:
    from sessionware.core.memory.policy import ContextPolicy

    return config.context if config.context is not None else ContextPolicy(budget=config.budget)


def _managed_hooks(config: _Config) -> tuple[Any, int]:
    """Managed mode's hooks (what ``wrap(mode="managed")`` installs) and their round limit."""
    from sessionware.adapters.managed.hooks import ManagedHooks

    hooks = ManagedHooks(_policy(config))
    return hooks, hooks.max_hidden_rounds


def _spec_for(provider: str) -> Callable[[Any], Any]:
    row = provider_named(provider)
    if row is None:
        raise LookupError(f"no provider {provider!r} in the provider table")
    return adapter_of(row).spec_for


_default = Instrumentor()


def default_instrumentor() -> Instrumentor:
    """The instrumentor ``instrument()`` and ``uninstrument()`` use."""
    return _default


def _providers(chosen: Iterable[Provider | str] | None) -> frozenset[str]:
    known = [row.name for row in providers()]
    if chosen is None:
        return frozenset(known)
    if isinstance(chosen, str):
        chosen = [chosen]
    names: set[str] = set()
    for name in chosen:
        if name not in known:
            raise InvalidSessionOperation(
                "instrument", f"unknown provider {name!r}; known: {', '.join(known)}"
            )
        names.add(str(name))
    return frozenset(names)


def check_mode(
    mode: WrapMode | str,
    budget: int | None,
    context: ContextPolicy | None = None,
    *,
    operation: str = "instrument",
) -> bool:
    """Check the mode settings; True for managed mode.

    ``budget`` (managed mode's input token budget) and ``context`` (a whole
    ``ContextPolicy``) configure managed mode: observe mode refuses them, and only one of
    the two may be given.
    """
    chosen = parse_mode(mode, operation)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise InvalidSessionOperation(
            operation, f"budget must be a positive number of tokens, got {budget!r}"
        )
    if chosen is WrapMode.OBSERVE and (budget is not None or context is not None):
        raise InvalidSessionOperation(
            operation, "a token budget configures managed mode; observe mode sends what the app built"
        )
    if budget is not None and context is not None:
        raise InvalidSessionOperation(operation, "give the budget inside the ContextPolicy, not both")
    return chosen is WrapMode.MANAGED


def instrument(
    *,
    store: StoreLike = None,
    session_id: str | None = None,
    mode: WrapMode | str = WrapMode.OBSERVE,
    budget: int | None = None,
    context: ContextPolicy | None = None,
    providers: Iterable[Provider | str] | None = None,
    otel: bool | OtelSettings | None = None,
) -> None:
    """Record every call of the OpenAI, Anthropic and LiteLLM SDKs in this process.

    ``store``, ``session_id``, ``mode`` and ``context`` mean what they mean for
    ``wrap()``; ``budget`` is a shortcut for ``context=ContextPolicy(budget=...)``.
    ``providers`` limits which SDKs are patched (``"openai"``, ``"anthropic"``,
    ``"litellm"``; all by default). Calling it again with the same settings changes
    nothing; with other settings it re-instruments (both with a warning).

    In managed mode the OpenAI and Anthropic clients send the context the session's
    virtual memory builds, and so do ``litellm.completion`` / ``acompletion`` (patched
    with ``sessionware.adapters.litellm.managed``; LiteLLM's other calls are recorded by
    its callback).

    ``otel=True`` (or ``OtelSettings``) exports the OpenAI and Anthropic calls as
    OpenTelemetry spans (``sessionware.configure(otel=...)``, the process default).

    >>> import sessionware
    >>> sessionware.instrument(store="memory://", providers=["openai"])
    >>> sessionware.uninstrument()
    """
    managed = check_mode(mode, budget, context)
    if session_id is not None and (not isinstance(session_id, str) or not session_id.strip()):
        raise InvalidSessionOperation(
            "instrument", f"session_id must be a non-empty string, got {session_id!r}"
        )
    if otel is not None:
        from sessionware.core.defaults import configure

        configure(otel=otel)
    _default.instrument(
        _Config(
            store=store,
            session_id=session_id,
            providers=_providers(providers),
            managed=managed,
            budget=budget,
            context=context,
        )
    )


def uninstrument() -> None:
    """Undo ``instrument()``: every patched class and list is exactly as it was before.

    A no-op (with a warning) when nothing is instrumented.

    >>> import sessionware
    >>> sessionware.uninstrument()
    """
    _default.uninstrument()


def is_instrumented() -> bool:
    """True between ``instrument()`` and ``uninstrument()``."""
    return _default.active
