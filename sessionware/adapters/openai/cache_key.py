"""``prompt_cache_key``: keep a session's calls on the same OpenAI prompt-cache shard.

OpenAI routes a request to a cache machine by a hash of its prefix and, when given, its
``prompt_cache_key``; requests of one conversation that share a key land together and
hit the cache more often (about 15 requests a minute per prefix and key before they
overflow to other machines). sessionware sets the key to a hash of the session: the
session the client or the scope names, else the conversation's opening (its system
prompt and first user message), which is what an automatic session id is made from.

Only on ``api.openai.com`` (other servers that speak OpenAI's API may refuse an unknown
field), only on chat completions and Responses, and never over a key the app set.

>>> key_for("ticket-42")
'sw-d987d0d0e2f47ea84ac614989d4b82ac'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sessionware.adapters.engine.messages import fingerprint

__all__ = ["OPENAI_HOST", "accepts_cache_key", "conversation_of", "key_for", "with_cache_key"]

OPENAI_HOST = "api.openai.com"
_FIELD = "prompt_cache_key"


def accepts_cache_key(client: Any) -> bool:
    """Whether ``client`` (an OpenAI SDK client) talks to OpenAI's own API, which accepts
    ``prompt_cache_key`` (Azure and other OpenAI-compatible servers may refuse it)."""
    base = getattr(client, "base_url", None)
    return getattr(base, "host", None) == OPENAI_HOST and "azure" not in type(client).__name__.lower()


def key_for(session: str) -> str:
    """The cache key of a session id (or of a conversation's fingerprint)."""
    return "sw-" + hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def conversation_of(body: Mapping[str, Any]) -> str | None:
    """The automatic session id of the conversation ``body`` continues."""
    messages = body.get("messages")
    if isinstance(messages, list):
        system = next(
            (
                m.get("content")
                for m in messages
                if isinstance(m, dict) and m.get("role") in ("system", "developer")
            ),
            None,
        )
        first = next(
            (m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"), None
        )
        return fingerprint(system if isinstance(system, str) else None, first)
    items = body.get("input")
    instructions = body.get("instructions")
    if isinstance(items, str):
        return fingerprint(instructions if isinstance(instructions, str) else None, items)
    if isinstance(items, list):
        first = next(
            (i.get("content") for i in items if isinstance(i, dict) and i.get("role") == "user"), None
        )
        return fingerprint(instructions if isinstance(instructions, str) else None, first)
    return None


def with_cache_key(options: Any, session_id: str | None) -> Any:
    """``options`` with a ``prompt_cache_key`` in its body, or as they were (the app set
    one, or nothing identifies the conversation)."""
    body = options.json_data
    if not isinstance(body, dict) or _FIELD in body:
        return options
    session = session_id or conversation_of(body)
    if session is None:
        return options
    return options.model_copy(update={"json_data": {**body, _FIELD: key_for(session)}})
