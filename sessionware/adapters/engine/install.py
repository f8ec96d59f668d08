"""Hooking a client instance, idempotently and reversibly.

``install`` puts the funnel hook (``funnel``) on the client **instance**, so the same
object is returned, other clients are untouched and ``isinstance`` is unaffected. A
mode's hooks may hook the client further (optional ``attach(client, config, is_async=)``
/ ``detach(client)``: managed mode's resource methods, see ``managed.resource``). The
client's ``copy``/``with_options`` are hooked too, so derived clients record the same
way. The record of what was replaced lives on the instance (not in a global registry
that would keep clients alive), and ``uninstall`` walks it back exactly.
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


@dataclass
class _Installed:
    config: WrapConfig
    funnel: str
    hook: Callable[..., Any]
    previous: dict[str, Any]
    """Instance attributes replaced by ours (usually none: the class methods showed through)."""
    patched: dict[str, Any]


def installed_config(client: Any) -> WrapConfig | None:
    """The configuration of a wrapped client, or None."""
    installed: _Installed | None = vars(client).get(_STATE_ATTR)
    return installed.config if installed is not None else None


def install(client: Any, config: WrapConfig, *, funnel: str, is_async: bool) -> WrapConfig:
    """Hook ``client``'s ``funnel`` method (idempotent: an already wrapped client gets the
    new settings)."""
    attrs = vars(client)
    installed: _Installed | None = attrs.get(_STATE_ATTR)
    if installed is not None:
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
    patched: dict[str, Any] = {funnel: hook}
    for name in _DERIVING:
        derive = getattr(client, name, None)
        if callable(derive):
            patched[name] = _deriving(derive, config, funnel=funnel, is_async=is_async)
    previous = {name: attrs[name] for name in patched if name in attrs}
    attrs.update(patched)
    attrs[_STATE_ATTR] = _Installed(
        config=config, funnel=funnel, hook=hook, previous=previous, patched=patched
    )
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


def _deriving(
    derive: Callable[..., Any], config: WrapConfig, *, funnel: str, is_async: bool
) -> Callable[..., Any]:
    """``client.copy`` / ``with_options`` whose new client is wrapped the same way."""

    def make(*args: Any, **kwargs: Any) -> Any:
        derived = derive(*args, **kwargs)
        try:
            install(derived, dataclasses.replace(config, enabled=True), funnel=funnel, is_async=is_async)
        except Exception as exc:
            guard.report("a derived client", exc)
        return derived

    return make


def uninstall(client: Any) -> bool:
    """Undo ``install``; False when ``client`` was not wrapped.

    If another library replaced the funnel after us, its wrapper is left in place and
    ours inside it is switched off instead, so neither breaks.
    """
    attrs = vars(client)
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
