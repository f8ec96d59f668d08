"""``prompt_cache_key`` on calls LiteLLM sends to OpenAI's own API, as a wrapped OpenAI
client sends it (``sessionware.adapters.openai.cache_key``): a stable hash of the session.

LiteLLM forwards ``prompt_cache_key`` to OpenAI as one of its chat parameters (its OpenAI
chat config lists it among the supported ones, so ``litellm.completion(...,
prompt_cache_key=...)`` puts it in the request body). sessionware adds it where it has
the call's arguments or body in hand, never over a key the app set:

* observe mode (``SessionCallback``, and the proxy's ``ProxyHook``, which is one): LiteLLM
  hands the request body it is about to send to its callbacks' ``log_pre_api_call``
  (``additional_args["complete_input_dict"]``, the very dict its OpenAI handler then
  sends); the key goes in there;
* managed mode: each round's arguments to ``litellm.completion`` carry it.

Only for LiteLLM's ``openai`` provider talking to ``api.openai.com`` (other servers that
speak OpenAI's API, Azure included, may refuse an unknown field), and only on chat
completions. The session is the one the call names (``metadata={"session_id": ...}``,
LiteLLM's session id, the callback's ``session_id``, the surrounding scope), else the
conversation's opening, as for wrapped clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sessionware.adapters.openai.cache_key import OPENAI_HOST, conversation_of, key_for

__all__ = ["FIELD", "add_cache_key", "named_session", "sends_to_openai"]

FIELD = "prompt_cache_key"


def sends_to_openai(provider: object, api_base: object, client: object = None) -> bool:
    """Whether a LiteLLM call of ``provider`` to ``api_base`` (through ``client``, an
    OpenAI SDK client the app passed, if any) reaches OpenAI's own API."""
    if provider != "openai":
        return False
    if client is not None:
        base = getattr(client, "base_url", None)
        if getattr(base, "host", None) != OPENAI_HOST or "azure" in type(client).__name__.lower():
            return False
    if api_base is None or api_base == "":
        return True  # LiteLLM's default for the provider: OpenAI's API
    # A string, or as LiteLLM's OpenAI handler hands it to callbacks: the client's parsed
    # base URL (httpx's, whose host is ``host``; urllib's is ``hostname``).
    if isinstance(api_base, str):
        host = urlsplit(api_base).hostname
    else:
        host = getattr(api_base, "host", None) or getattr(api_base, "hostname", None)
    return host == OPENAI_HOST


def add_cache_key(body: dict[str, Any], session_id: str | None) -> bool:
    """Put the session's key in ``body`` (in place) unless it has one or nothing names the
    conversation; True when it was added."""
    if FIELD in body and body[FIELD] is not None:
        return False
    session = session_id or conversation_of(body)
    if session is None:
        return False
    body[FIELD] = key_for(session)
    return True


def named_session(
    metadata: Mapping[str, Any] | None, litellm_session_id: object, default: str | None
) -> str | None:
    """The session a LiteLLM call names, by ``SessionCallback``'s rule (before the scope)."""
    named = (metadata or {}).get("session_id") or litellm_session_id or default
    return str(named) if named else None
