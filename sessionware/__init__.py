"""sessionware: make existing LLM apps session-aware without changing their call sites.

Importing this package is cheap and has no side effects: names are loaded on first
use, no store is opened and no provider SDK is imported. Its one act is the one the
logging documentation asks of a library: a ``NullHandler`` on the ``sessionware``
logger, so its messages (a store outage, a call left unrecorded) reach only the
handlers the app configured, and never stderr on their own.

>>> import sessionware
>>> sessionware.SessionManager.__name__
'SessionManager'
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from sessionware._version import __version__

if TYPE_CHECKING:
    from sessionware.adapters.api import unwrap, wrap
    from sessionware.adapters.instrument import instrument, uninstrument
    from sessionware.adapters.scope import current_session, session
    from sessionware.core.accounting.pricing import PriceBook
    from sessionware.core.accounting.usage import TokenSource, TokenUsage
    from sessionware.core.defaults import configure
    from sessionware.core.errors import (
        InvalidSessionOperation,
        SessionAlreadyExists,
        SessionNotFound,
        SessionwareError,
        StorageError,
        TokenLimitExceeded,
        ToolProcessingError,
    )
    from sessionware.core.memory.enums import VMMode
    from sessionware.core.memory.policy import ContextPolicy
    from sessionware.core.session.enums import Durability, EventSource, EventType, Role, RunStatus
    from sessionware.core.session.manager import SessionManager
    from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionRun, ToolCall
    from sessionware.core.session.simple_api import (
        LLMCallResult,
        TrackedExchange,
        get_conversation_history,
        get_session_stats,
        quick_conversation,
        track_conversation,
        track_infinite_conversation,
        track_llm_call,
        track_tool_use,
    )
    from sessionware.core.session.stats import SessionStats
    from sessionware.core.store.store import Store
    from sessionware.core.store.url import open_store
    from sessionware.core.tools import (
        BindingGuard,
        BudgetGuard,
        CachePolicy,
        Guard,
        GuardChain,
        GuardDecision,
        GuardVerdict,
        ProceduralMemory,
        RetryPolicy,
        RunawayGuard,
        ToolRegistry,
        ToolResult,
        ToolRound,
        ToolRunner,
        ToolStatus,
        UngroundedGuard,
    )

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "PriceBook": "sessionware.core.accounting.pricing",
    "TokenSource": "sessionware.core.accounting.usage",
    "TokenUsage": "sessionware.core.accounting.usage",
    "configure": "sessionware.core.defaults",
    "InvalidSessionOperation": "sessionware.core.errors",
    "SessionAlreadyExists": "sessionware.core.errors",
    "SessionNotFound": "sessionware.core.errors",
    "SessionwareError": "sessionware.core.errors",
    "StorageError": "sessionware.core.errors",
    "TokenLimitExceeded": "sessionware.core.errors",
    "ToolProcessingError": "sessionware.core.errors",
    "Durability": "sessionware.core.session.enums",
    "EventSource": "sessionware.core.session.enums",
    "EventType": "sessionware.core.session.enums",
    "Role": "sessionware.core.session.enums",
    "RunStatus": "sessionware.core.session.enums",
    "SessionManager": "sessionware.core.session.manager",
    "Session": "sessionware.core.session.models",
    "SessionEvent": "sessionware.core.session.models",
    "SessionInfo": "sessionware.core.session.models",
    "SessionRun": "sessionware.core.session.models",
    "ToolCall": "sessionware.core.session.models",
    "LLMCallResult": "sessionware.core.session.simple_api",
    "TrackedExchange": "sessionware.core.session.simple_api",
    "get_conversation_history": "sessionware.core.session.simple_api",
    "get_session_stats": "sessionware.core.session.simple_api",
    "quick_conversation": "sessionware.core.session.simple_api",
    "track_conversation": "sessionware.core.session.simple_api",
    "track_llm_call": "sessionware.core.session.simple_api",
    "track_tool_use": "sessionware.core.session.simple_api",
    "SessionStats": "sessionware.core.session.stats",
    "Store": "sessionware.core.store.store",
    "open_store": "sessionware.core.store.url",
    "ProceduralMemory": "sessionware.core.tools",
    "BindingGuard": "sessionware.core.tools",
    "UngroundedGuard": "sessionware.core.tools",
    "RunawayGuard": "sessionware.core.tools",
    "BudgetGuard": "sessionware.core.tools",
    "GuardVerdict": "sessionware.core.tools",
    "GuardDecision": "sessionware.core.tools",
    "GuardChain": "sessionware.core.tools",
    "Guard": "sessionware.core.tools",
    "CachePolicy": "sessionware.core.tools",
    "RetryPolicy": "sessionware.core.tools",
    "ToolStatus": "sessionware.core.tools",
    "ToolResult": "sessionware.core.tools",
    "ToolRound": "sessionware.core.tools",
    "ToolRunner": "sessionware.core.tools",
    "ToolRegistry": "sessionware.core.tools",
    "track_infinite_conversation": "sessionware.core.session.simple_api",
    "VMMode": "sessionware.core.memory.enums",
    "ContextPolicy": "sessionware.core.memory.policy",
    "current_session": "sessionware.adapters.scope",
    "session": "sessionware.adapters.scope",
    "unwrap": "sessionware.adapters.api",
    "instrument": "sessionware.adapters.instrument",
    "uninstrument": "sessionware.adapters.instrument",
    "wrap": "sessionware.adapters.api",
}

__all__ = [
    "BindingGuard",
    "BudgetGuard",
    "CachePolicy",
    "ContextPolicy",
    "Durability",
    "EventSource",
    "EventType",
    "Guard",
    "GuardChain",
    "GuardDecision",
    "GuardVerdict",
    "InvalidSessionOperation",
    "LLMCallResult",
    "PriceBook",
    "ProceduralMemory",
    "RetryPolicy",
    "Role",
    "RunStatus",
    "RunawayGuard",
    "Session",
    "SessionAlreadyExists",
    "SessionEvent",
    "SessionInfo",
    "SessionManager",
    "SessionNotFound",
    "SessionRun",
    "SessionStats",
    "SessionwareError",
    "StorageError",
    "Store",
    "TokenLimitExceeded",
    "TokenSource",
    "TokenUsage",
    "ToolCall",
    "ToolProcessingError",
    "ToolRegistry",
    "ToolResult",
    "ToolRound",
    "ToolRunner",
    "ToolStatus",
    "TrackedExchange",
    "UngroundedGuard",
    "VMMode",
    "__version__",
    "configure",
    "current_session",
    "get_conversation_history",
    "get_session_stats",
    "instrument",
    "open_store",
    "quick_conversation",
    "session",
    "track_conversation",
    "track_infinite_conversation",
    "track_llm_call",
    "track_tool_use",
    "uninstrument",
    "unwrap",
    "wrap",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionware' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
