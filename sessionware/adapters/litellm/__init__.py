"""LiteLLM: every ``completion`` / ``acompletion`` recorded by a callback, or managed.

>>> from sessionware.adapters.litellm import SessionCallback, managed

``callback`` records LiteLLM's calls (``SessionCallback``); ``handle`` (``managed(...)``)
sends them through the managed funnel, with ``rounds`` driving one call's rounds and
``read`` reading a call from what LiteLLM hands its callbacks. Importing this package
imports ``litellm``.
"""

from __future__ import annotations

from sessionware.adapters.litellm.callback import (
    CALLBACK_LISTS,
    AsyncManagedStream,
    ManagedLiteLLM,
    ManagedStream,
    SessionCallback,
    is_registered,
    managed,
)

__all__ = [
    "CALLBACK_LISTS",
    "AsyncManagedStream",
    "ManagedLiteLLM",
    "ManagedStream",
    "SessionCallback",
    "is_registered",
    "managed",
]
