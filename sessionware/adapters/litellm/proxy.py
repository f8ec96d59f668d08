"""The LiteLLM proxy: every request a proxy fleet serves, recorded into shared sessions.

Configured in the proxy's YAML, for apps in any language behind it. A file next to the
config builds the hook (LiteLLM's callbacks are instances named ``module.attribute``)::

    # sessionware_hook.py
    from sessionware.adapters.litellm.proxy import ProxyHook
    hook = ProxyHook.from_env()     # SESSIONWARE_STORE, SESSIONWARE_SESSION

    # config.yaml
    litellm_settings:
      callbacks: sessionware_hook.hook

Every worker of every proxy host records into the store the URL names (``redis://...`` or
``postgresql://...`` for several workers or hosts); a conversation whose requests land on
different workers is one session. The store orders appends, and each worker takes in
what the others recorded before recording a call (``SessionState.follow``). A worker
records after answering, so the next turn, answered by another worker, may reach the
store first with this turn in its history: the late call is then recorded as a call
(usage, cost, ``metadata["answer_seq"]``) and its messages are not written twice.
Measured by ``tests/adapters/test_litellm_proxy_fleet.py``: 2 workers, 200 requests of
20 interleaved conversations, on Redis and on PostgreSQL: 20 sessions, every turn once,
in order. What remains possible: two workers reading a session in the same moment and
both appending the same turn (the store has no conditional append); the window is the
few milliseconds between a worker's read and its commit.

What is recorded: chat completions, the Responses API and Anthropic's ``/v1/messages``,
streamed or not, answered or failed, from the events LiteLLM hands its callbacks once
the call is over (the request as the client sent it, the answer, usage, latency, time to
first token, and LiteLLM's ``response_cost`` cross-checked against sessionware's prices:
see ``SessionCallback``). The proxy's own features are untouched: the hook changes no
request and no response, so keys, budgets, fallbacks (the call that finally answered is
the one recorded) and spend logs work as before.

Which session, in this order (the rule ``SessionCallback`` applies in-process):

1. the request's ``metadata={"session_id": ...}`` (``litellm_metadata`` for Responses
   and ``/v1/messages``), or LiteLLM's own session id, which it takes from the
   ``x-litellm-session-id`` header;
2. the hook's ``session_id`` (``SESSIONWARE_SESSION``), for a proxy that serves one
   conversation;
3. the conversation's fingerprint (its system prompt and first user message), so apps
   that resend their history thread into one session without naming it.

Managed mode in the proxy (not built yet; what LiteLLM 1.106's proxy hooks allow, read
from its source and checked against a running proxy):

* ``async_pre_call_hook`` runs in every worker for the three endpoints (``call_type``
  ``acompletion``, ``aresponses``, ``anthropic_messages``) before routing, and the ``data``
  it returns is what the router sends: the messages can be replaced by the context built
  inside the model's budget, and the memory tools added, for round 1.
* Plain responses: a ``CustomLogger``'s ``async_post_call_success_hook`` return value
  replaces the response (``ModelResponse``, ``ResponsesAPIResponse``, or a dict for
  ``/v1/messages``), so memory calls can be served there, further rounds sent through the
  proxy's own router (``litellm.proxy.proxy_server.llm_router``, keeping fallbacks and the
  caller's key metadata for spend), and the final answer returned.
* Streams: ``async_post_call_streaming_iterator_hook`` gets the upstream iterator and what
  it yields is what the client receives, so a round that turns out to be a memory call can
  be swallowed and a follow-up round's chunks yielded instead. Chunks are
  ``ModelResponseStream`` (chat), Responses event objects, and raw SSE bytes for
  ``/v1/messages`` (several events per chunk, to be parsed and re-framed).
* What the hooks do not give: the response headers (``x-litellm-response-cost``, call id)
  are sent before the stream body and describe round 1 only; hidden rounds are calls of
  their own in the spend logs; budgets and rate limits are checked for round 1 only.

>>> hook = ProxyHook(store="memory://", session_id="support-42")
>>> sorted(hook.call_types)
['acompletion', 'anthropic_messages', 'aresponses', 'completion', 'responses']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from sessionware.adapters.instrument.zero_code import ZeroCodeSettings
from sessionware.adapters.litellm.callback import SessionCallback
from sessionware.adapters.litellm.read import PROXY_CALL_TYPES, RECORDED_CALL_TYPES, LiteLLMCall
from sessionware.core.errors import InvalidSessionOperation, StorageError
from sessionware.core.session.state import SessionState

# LiteLLM's ProxyErrorTypes values for a caller the proxy could not authenticate.
_REFUSALS = frozenset(
    {"auth_error", "expired_key", "token_not_found_in_db", "auth_provider_unavailable", "no_db_connection"}
)

__all__ = ["ProxyHook"]

logger = logging.getLogger(__name__)

# How long the recorder thread waits for a record's commit before leaving it to the store.
_COMMIT_WAIT_SECONDS = 2.0


class ProxyHook(SessionCallback):
    """A ``SessionCallback`` for the LiteLLM proxy: the proxy's endpoints recorded too.

    ``store``, ``session_id`` and ``prices`` as for ``SessionCallback``; build it from
    the environment with ``from_env()`` in the file the proxy's YAML names.
    """

    call_types = RECORDED_CALL_TYPES | PROXY_CALL_TYPES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyHook:
        """The hook ``SESSIONWARE_STORE`` (default: ``sqlite:///./sessionware.db``, made
        absolute) and ``SESSIONWARE_SESSION`` describe, as ``sessionware run`` reads them.

        >>> ProxyHook.from_env({"SESSIONWARE_STORE": "memory://"}).session_id is None
        True
        """
        env = os.environ if environ is None else environ
        settings = ZeroCodeSettings.from_environ(env, cwd=os.getcwd())
        if settings.mode != "observe":
            raise InvalidSessionOperation(
                "ProxyHook",
                "the proxy hook records (observe mode); managed mode runs in the app's process"
                " (sessionware.wrap(..., mode='managed') or sessionware.adapters.litellm.managed)",
            )
        return cls(store=settings.store, session_id=settings.session_id)

    def _record(self, state: SessionState, call: LiteLLMCall) -> None:
        super()._record(state, call)
        # Committed now rather than after the store's write delay: the next turn of the
        # conversation may be answered by another worker within it, and must see this one.
        # (This runs on the recorder thread, off the proxy's path; an outage is left to
        # the store's retries.)
        try:
            state.store.flush(timeout=_COMMIT_WAIT_SECONDS)
        except (StorageError, TimeoutError) as exc:
            logger.debug("session %s: the record is committed later (%r)", state.id, exc)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        if not refused_caller(kwargs):
            super().log_failure_event(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        if not refused_caller(kwargs):
            await super().async_log_failure_event(kwargs, response_obj, start_time, end_time)


def refused_caller(kwargs: Any) -> bool:
    """Whether the proxy refused to authenticate the caller (an unknown or expired key, or
    no way to check it) before any model was asked. Such a request is not part of any
    conversation, and recording it would let anyone without a valid key write into any
    session they name. The proxy logs it as a failure whose ``ProxyException`` has one of
    these types. (Calls of a known key refused for budget or model access are recorded:
    their caller is known and the app may want to see the refusal in its session.)"""
    if not isinstance(kwargs, dict):
        return False
    kind = getattr(kwargs.get("exception"), "type", None)
    return str(getattr(kind, "value", kind)) in _REFUSALS
