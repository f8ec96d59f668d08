"""Which SDK versions sessionware supports, and the one warning for any other.

The ranges live in the provider table (``providers``, each row's ``versions``);
``pyproject.toml``'s extras and the README name the same ranges (a test keeps the three
equal). ``instrument()`` leaves an SDK outside its range unpatched; ``wrap()`` wraps the
client anyway (the app asked for it, and a bookkeeping failure never breaks its call).
Either way the process is told once per SDK and version, with the supported range.

>>> supported_range("openai")
'openai>=2.20,<4'
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType

from sessionware.adapters.providers import parse_version, provider_named

__all__ = ["check_supported", "module_version", "supported_range"]

logger = logging.getLogger(__name__)

_warned: set[tuple[str, str | None, bool]] = set()
_lock = threading.Lock()


def module_version(module: ModuleType, provider: str) -> str | None:
    """The installed version of ``provider``'s SDK (``__version__``, else its metadata)."""
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import version as dist_version

        return dist_version(provider)
    except Exception:
        return None


def supported_range(provider: str) -> str | None:
    """``provider``'s supported range as a requirement (``openai>=2.20,<4``); None: any."""
    row = provider_named(provider)
    if row is None or row.versions is None:
        return None
    return f"{provider}{row.versions.describe()}"


def check_supported(provider: str, module: ModuleType, *, patching: bool) -> bool:
    """True when ``module`` is in its supported range; otherwise warn (once) and False.

    ``patching``: ``instrument()`` asks, and skips the SDK (its calls are not recorded);
    else ``wrap()`` asks, and records anyway.
    """
    row = provider_named(provider)
    supported = row.versions if row is not None else None
    if supported is None:
        return True
    text = module_version(module, provider)
    version = parse_version(text) if text else None
    if version is not None and supported.contains(version):
        return True
    with _lock:
        if (provider, text, patching) in _warned:
            return False
        _warned.add((provider, text, patching))
    found = f"{provider} {text or 'of unknown version'}"
    if patching:
        logger.warning(
            "sessionware does not instrument %s (supported: %s); its calls are not recorded",
            found,
            supported_range(provider),
        )
    else:
        logger.warning(
            "sessionware supports %s, not %s: the client is wrapped, but what it records may be "
            "incomplete (the app's calls are never affected)",
            supported_range(provider),
            found,
        )
    return False
