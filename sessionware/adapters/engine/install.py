"""Hooking a client instance, idempotently and reversibly.

``install`` puts the funnel hook (``funnel``) on the client **instance**, so the same
object is returned, other clients are untouched and ``isinstance`` is unaffected. A
mode's hooks may hook the client further (optional ``attach(client, config, is_async=)``
/ ``detach(client)``: managed mode's resource methods, see ``managed.resource``). The
record of what was replaced lives on the instance (not in a global registry that would
keep clients alive), and ``uninstall`` walks it back exactly.

Clients made from a wrapped one are recorded the same way, each sending through itself
with its own options (retries, timeouts, headers, middleware, HTTP client, base URL):

* ``client.copy(...)`` / ``client.with_options(...)`` are hooked on the instance: the
  new client gets hooks of its own, with the same session settings and the provider
  reading of its own (``derive``: a new base URL decides again whether calls get a
  ``prompt_cache_key`` or are asked for their stream usage);
* ``copy.copy(client)`` (anthropic's own helpers copy a client to change its retries and
  middleware) would copy the instance's hooks, which call the original client: the
  client's class gets a ``__copy__`` that makes the same shallow copy and gives it hooks
  of its own. It is left on the class after ``uninstall`` and copies unwrapped clients
  exactly as ``copy.copy`` does without it. A class defining its own ``__copy__`` keeps it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.funnel import afunnel_hook, funnel_hook

__all__ = ["install", "installed_config", "uninstall"]

logger = logging.getLogger(__name__)

_STATE_ATTR = "_sessionware_wrap"
_DERIVING = ("copy", "with_options")

Derive = Callable[[Any, WrapConfig], WrapConfig]
"""The configuration of a client made from a wrapped one: ``(new client, the wrapped
client's configuration) -> its own``."""


def same_settings(client: Any, config: WrapConfig) -> WrapConfig:
    """The default ``Derive``: the wrapped client's configuration, switched on."""
    return dataclasses.replace(config, enabled=True)


@dataclass
class _Installed:
    config: WrapConfig
    funnel: str
    hook: Callable[..., Any]
    previous: dict[str, Any]
    """Instance attributes replaced by ours (usually none: the class methods showed through)."""
    patched: dict[str, Any]
    is_async: bool
    derive: Derive
    owner: int
    """``id()`` of the client hooked: a shallow copy carries this record in its ``__dict__``."""


def _installed(client: Any) -> _Installed | None:
    """The record of ``client``'s own hooks (not those of a client it was copied from)."""
    installed: _Installed | None = vars(client).get(_STATE_ATTR)
    return installed if installed is not None and installed.owner == id(client) else None


def installed_config(client: Any) -> WrapConfig | None:
    """The configuration of a wrapped client, or None."""
    installed = _installed(client)
    return installed.config if installed is not None else None


def install(
    client: Any, config: WrapConfig, *, funnel: str, is_async: bool, derive: Derive = same_settings
) -> WrapConfig:
    """Hook ``client``'s ``funnel`` method (idempotent: an already wrapped client gets the
    new settings). ``derive`` configures the clients made from it (``copy``,
    ``with_options``, ``copy.copy``)."""
    attrs = vars(client)
    _take_out_copied(client)
    installed = _installed(client)
    if installed is not None:
        installed.derive = derive
        current = installed.config
        if current.hooks is not config.hooks:
            _detach(client, current)
        for f in ("session_id", "store", "hooks", "max_rounds", "prices"):
            setattr(current, f, getattr(config, f))
        current.enabled = True
        _attach(client, current, is_async=is_async)
        return current
    original = getattr(client, funnel)
    hook = afunnel_hook(config, original) if is_async else funnel_hook(config, original)
    state = _Installed(
        config=config,
        funnel=funnel,
        hook=hook,
        previous={},
        patched={funnel: hook},
        is_async=is_async,
        derive=derive,
        owner=id(client),
    )
    for name in _DERIVING:
        method = getattr(client, name, None)
        if callable(method):
            state.patched[name] = _deriving(method, state)
    state.previous = {name: attrs[name] for name in state.patched if name in attrs}
    attrs.update(state.patched)
    attrs[_STATE_ATTR] = state
    _copied_through_us(type(client))
    _attach(client, config, is_async=is_async)
    return config


def _attach(client: Any, config: WrapConfig, *, is_async: bool) -> None:
    """Let the mode hook the client further (``attach``: managed mode's resource methods)."""
    attach = getattr(config.hooks, "attach", None)
    if attach is not None:
        try:
            attach(client, config, is_async=is_async)
        except Exception as exc:
            guard.report("a client", exc)


def _detach(client: Any, config: WrapConfig) -> None:
    detach = getattr(config.hooks, "detach", None)
    if detach is not None:
        try:
            detach(client)
        except Exception as exc:
            guard.report("a client", exc)


def _deriving(method: Callable[..., Any], state: _Installed) -> Callable[..., Any]:
    """``client.copy`` / ``with_options`` whose new client is wrapped the same way."""

    def make(*args: Any, **kwargs: Any) -> Any:
        derived = method(*args, **kwargs)
        try:
            _install_derived(derived, state)
        except Exception as exc:
            guard.report("a derived client", exc)
        return derived

    return make


def _install_derived(derived: Any, state: _Installed) -> None:
    install(
        derived,
        state.derive(derived, state.config),
        funnel=state.funnel,
        is_async=state.is_async,
        derive=state.derive,
    )


# -- copy.copy(client) ----------------------------------------------------------------------


def _copied_through_us(cls: type) -> None:
    """Give ``cls`` our ``__copy__`` unless it (or a base) defines one."""
    if getattr(cls, "__copy__", None) is None:
        cls.__copy__ = _copy_client  # type: ignore[attr-defined]


def _copy_client(client: Any) -> Any:
    """``copy.copy(client)``: the shallow copy Python makes by default; a copy of a wrapped
    client is wrapped in its own right (the hooks it carried over call the original)."""
    duplicate = _shallow_copy(client)
    try:
        state = _installed(client)
        _take_out_copied(duplicate)
        if state is not None and state.config.enabled:
            _install_derived(duplicate, state)
    except Exception as exc:
        guard.report("a copied client", exc)
    return duplicate


def _shallow_copy(obj: Any) -> Any:
    """What ``copy.copy`` does for a class without ``__copy__`` (its reduce protocol)."""
    reduce: Callable[[Any, int], Any] = getattr(type(obj), "__reduce_ex__")  # noqa: B009 (as copy.copy)
    reduced = reduce(obj, 4)
    if isinstance(reduced, str):
        return obj
    func, args, state, items, pairs = (*reduced, None, None, None)[:5]
    duplicate = func(*args)
    if state is not None:
        setstate = getattr(duplicate, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            slots = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slots = state
            if state:
                vars(duplicate).update(state)
            for name, value in (slots or {}).items():
                setattr(duplicate, name, value)
    for item in items or ():
        duplicate.append(item)
    for key, value in pairs or ():
        duplicate[key] = value
    return duplicate


def _take_out_copied(client: Any) -> None:
    """Remove the hooks ``client`` carries over from the client it was copied from."""
    attrs = getattr(client, "__dict__", None)
    carried: _Installed | None = attrs.get(_STATE_ATTR) if attrs is not None else None
    if attrs is None or carried is None or carried.owner == id(client):
        return
    del attrs[_STATE_ATTR]
    for name, ours in carried.patched.items():
        if attrs.get(name) is not ours:
            continue  # replaced since: not ours to take out
        if name in carried.previous:
            attrs[name] = carried.previous[name]
        else:
            del attrs[name]


def uninstall(client: Any) -> bool:
    """Undo ``install``; False when ``client`` was not wrapped.

    If another library replaced the funnel after us, its wrapper is left in place and
    ours inside it is switched off instead, so neither breaks.
    """
    attrs = vars(client)
    _take_out_copied(client)
    installed: _Installed | None = attrs.pop(_STATE_ATTR, None)
    if installed is None:
        return False
    installed.config.enabled = False
    _detach(client, installed.config)
    for name, ours in installed.patched.items():
        if attrs.get(name) is not ours:
            logger.warning(
                "client.%s was replaced after sessionware wrapped it; sessionware's hook is switched off "
                "instead of removed",
                name,
            )
            continue
        if name in installed.previous:
            attrs[name] = installed.previous[name]
        else:
            del attrs[name]
    return True
