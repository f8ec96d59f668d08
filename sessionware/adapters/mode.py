"""``WrapMode``: what a wrapped or instrumented client does with its calls.

Standard library only: ``instrument()`` and the zero-code bootstrap check modes at
interpreter start.
"""

from __future__ import annotations

from enum import StrEnum

from sessionware.core.errors import InvalidSessionOperation

__all__ = ["WrapMode", "parse_mode"]


class WrapMode(StrEnum):
    """What a wrapped client does with its calls."""

    OBSERVE = "observe"
    """Record every call; send exactly what the app built (the default)."""
    MANAGED = "managed"
    """Also build what is sent from the session's virtual memory (needs ``sessionware.core.memory``)."""


def parse_mode(mode: WrapMode | str, operation: str) -> WrapMode:
    """``mode`` as a ``WrapMode``; ``InvalidSessionOperation`` (naming ``operation``) when
    it is neither.

    >>> parse_mode("managed", "wrap")
    <WrapMode.MANAGED: 'managed'>
    """
    try:
        return WrapMode(mode)
    except ValueError:
        choices = " or ".join(repr(m.value) for m in WrapMode)
        raise InvalidSessionOperation(operation, f"mode must be {choices}, got {mode!r}") from None
