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
what the others recorded before recording a call (``SessionState.follow``), holding the
session against the other workers from that read until its append is committed
(``SessionState.exclusive``: a Redis lock, a PostgreSQL advisory lock), so two workers
recording consecutive turns at once cannot both append the earlier turn. A worker
records after answering, so the next turn, answered by another worker, may reach the
store first with this turn in its history: the late call is then recorded as a call
(usage, cost, ``metadata["answer_seq"]``) and its messages are not written twice.
Measured by ``tests/adapters/test_litellm_proxy_fleet.py``: 2 workers, 200 requests of
20 interleaved conversations, on Redis and on PostgreSQL: 20 sessions, every turn once,
in order. What remains possible: a duplicate turn when a worker gives up waiting for
the lock (5 s: a holder stuck on a store outage) and records without it.

What is recorded: chat completions, the Responses API and Anthropic's ``/v1/messages``,
streamed or not, answered or failed, from the events LiteLLM hands its callbacks once
the call is over (the request as the client sent it, the answer, usage, latency, time to
first token, and LiteLLM's ``response_cost`` cross-checked against sessionware's prices:
see ``SessionCallback``). The proxy's own features are untouched: the hook changes no
response, and of a request only adds, on OpenAI's own API, the session's
``prompt_cache_key`` when the client sent none (``litellm.cache_key``), so keys, budgets,
fallbacks (the call that finally answered is the one recorded) and spend logs work as
before.

Which session, in this order (the rule ``SessionCallback`` applies in-process):

1. the request's ``metadata={"session_id": ...}`` (``litellm_metadata`` for Responses
   and ``/v1/messages``), or LiteLLM's own session id, which it takes from the
   ``x-litellm-session-id`` header;
2. the hook's ``session_id`` (``SESSIONWARE_SESSION``), for a proxy that serves one
   conversation;
3. the conversation's fingerprint (its system prompt and first user message), so apps
   that resend their history thread into one session without naming it.

Managed mode: ``SESSIONWARE_MODE=managed`` (and ``SESSIONWARE_BUDGET``) makes ``from_env()``
build a ``ManagedProxyHook``. For chat completions (``/v1/chat/completions``), plain and
streamed, it does in the proxy what ``sessionware.wrap(client, mode="managed")`` does in an
app's process, with the same machinery (``ManagedRounds`` driving a ``HookedCall`` with
``ManagedHooks``):

* ``async_pre_call_hook`` (every worker, before routing) records what the session lacks,
  builds the context inside the model's budget and returns it as the request to route:
  the app's messages replaced, the memory tools ``page_fault`` / ``search_pages`` added;
* ``async_post_call_success_hook`` (plain responses) reads the answer: a memory call is
  served and the next round sent through the proxy's own router (its fallbacks and
  retries, the caller's key metadata for its spend logs) until the model answers; that
  answer is what the client receives, and what is recorded;
* ``async_post_call_streaming_iterator_hook`` (streams) reads a round ahead until it
  shows what it is (``managed.streams``): a memory call is served and a hidden round's
  stream takes its place; an answer is passed on chunk by chunk;
* ``async_post_call_failure_hook`` records a first round that failed.

A budget too small for the system prompt and the latest turn is refused before anything
is sent: the client gets HTTP 400 with the reason.

What LiteLLM 1.106's proxy hooks do not allow, or not yet here:

* The Responses API and Anthropic's ``/v1/messages`` are recorded (observe) but sent as
  the app sent them. Their hooks would allow it (the pre-call hook sees their ``input`` /
  ``messages``; the post-call hook gets a ``ResponsesAPIResponse`` / the Anthropic dict;
  streams are Responses event objects / raw SSE bytes of ``/v1/messages``, several events
  per chunk). What is missing is ours: the managed machinery reads those shapes as SDK
  objects, so managing them needs readers of LiteLLM's objects and, for ``/v1/messages``
  streams, an SSE parser and writer at the proxy's layer.
* Response headers go out before the body: ``x-litellm-response-cost`` and the call id
  describe the first round only. Hidden rounds are calls of their own in the spend logs
  (the caller's key is charged for them), but budgets and rate limits are checked before
  the first round only.

>>> hook = ProxyHook(store="memory://", session_id="support-42")
>>> sorted(hook.call_types)
['acompletion', 'anthropic_messages', 'aresponses', 'completion', 'responses']
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.instrument.zero_code import ZeroCodeSettings
from sessionware.adapters.litellm.callback import SessionCallback, managed
from sessionware.adapters.litellm.read import PROXY_CALL_TYPES, RECORDED_CALL_TYPES
from sessionware.adapters.litellm.rounds import StartedCall, note_managed_call
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.errors import StorageError, TokenLimitExceeded
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.store.url import StoreLike

# LiteLLM's ProxyErrorTypes values for a caller the proxy could not authenticate.
_REFUSALS = frozenset(
    {"auth_error", "expired_key", "token_not_found_in_db", "auth_provider_unavailable", "no_db_connection"}
)

__all__ = ["MANAGED_CALL_TYPES", "ManagedProxyHook", "ProxyHook"]

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
        absolute), ``SESSIONWARE_SESSION``, ``SESSIONWARE_MODE``, ``SESSIONWARE_BUDGET`` and
        ``SESSIONWARE_OTEL`` describe, as ``sessionware run`` reads them: a ``ManagedProxyHook``
        in managed mode.

        >>> ProxyHook.from_env({"SESSIONWARE_STORE": "memory://"}).session_id is None
        True
        >>> managed = {"SESSIONWARE_STORE": "memory://", "SESSIONWARE_MODE": "managed"}
        >>> type(ProxyHook.from_env(managed)).__name__
        'ManagedProxyHook'
        """
        env = os.environ if environ is None else environ
        settings = ZeroCodeSettings.from_environ(env, cwd=os.getcwd())
        if settings.mode == "managed":
            return ManagedProxyHook(
                store=settings.store, session_id=settings.session_id, budget=settings.budget
            )
        return cls(store=settings.store, session_id=settings.session_id, otel=settings.otel or None)

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


MANAGED_CALL_TYPES = frozenset({"acompletion", "completion"})
"""The proxy's ``call_type``s managed (chat completions); other calls are recorded only."""


class _Started:
    """Calls between their pre-call hook and their answer, by ``litellm_call_id``
    (bounded: a request the proxy dropped without a success or failure hook ages out)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._calls: OrderedDict[str, StartedCall] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, call_id: str, started: StartedCall) -> None:
        with self._lock:
            self._calls[call_id] = started
            if len(self._calls) > self.limit:
                self._calls.popitem(last=False)

    def take(self, data: Any) -> StartedCall | None:
        call_id = data.get("litellm_call_id") if isinstance(data, dict) else None
        if not isinstance(call_id, str):
            return None
        with self._lock:
            return self._calls.pop(call_id, None)

    def __len__(self) -> int:
        return len(self._calls)


async def _route(**arguments: Any) -> Any:
    """A hidden round, sent by the proxy's router (as the proxy sends the first)."""
    from litellm.proxy.proxy_server import llm_router  # the running proxy's, set at start

    if llm_router is None:
        import litellm

        return await litellm.acompletion(**arguments)
    return await llm_router.acompletion(**arguments)


class ManagedProxyHook(ProxyHook):
    """``ProxyHook`` in managed mode (see the module docstring).

    ``budget`` (tokens) or ``context`` (a whole ``ContextPolicy``) as for
    ``sessionware.adapters.litellm.managed``; ``store``, ``session_id`` and ``prices`` as
    for ``ProxyHook``. Calls it does not manage are recorded as ``ProxyHook`` records them.
    """

    def __init__(
        self,
        *,
        store: StoreLike = None,
        session_id: str | None = None,
        prices: PriceBook | None = None,
        budget: int | None = None,
        context: ContextPolicy | None = None,
    ) -> None:
        super().__init__(store=store, session_id=session_id, prices=prices)
        self.handle = managed(
            budget=budget, context=context, store=self.store, session_id=session_id, prices=prices
        )
        self.started = _Started()

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | str | None:
        if call_type not in MANAGED_CALL_TYPES or not isinstance(data, dict):
            return data
        call_id = data.get("litellm_call_id")
        if not isinstance(call_id, str) or not call_id:
            return data
        try:
            started = await self.handle.rounds.astart(data)
        except TokenLimitExceeded as exc:
            return f"sessionware: {exc}"  # LiteLLM answers HTTP 400 with it
        if started is None:
            return data
        note_managed_call(call_id)  # recorded by managed mode, not by the observing hook
        self.started.put(call_id, started)
        return dict(started.send.json_data)

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        started = self.started.take(data)
        if started is None:
            return None
        try:
            return await self.handle.rounds.afinish(started, response, _route)
        finally:
            await self._acommit()

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        started = self.started.take(request_data)
        if started is None:
            async for chunk in response:
                yield chunk
            return
        stream = await self.handle.rounds.afinish(started, response, _route)
        async for chunk in stream:
            yield chunk
        await self._acommit()

    async def _acommit(self) -> None:
        """Commit the call's records before the client can send its next turn (to another
        worker, perhaps), rather than after the store's write delay.

        Usually there is nothing left to wait for: the call was recorded under the session's
        lock, which is held until its records are committed (``Store.exclusive``). A flush
        would then cost a round trip to the store's writer thread for nothing (0.5 ms at
        rest, several under load: two thread switches), so it is sent only when a write
        submitted by this process is not stored yet (a store without session locks, a lock
        not obtained, a write made after the record, a write retried or dropped)."""
        store = self._store()
        stats = store.stats
        if stats.written_ops == stats.submitted_ops and not store.barrier.pending:
            return
        try:
            await store.aflush(timeout=_COMMIT_WAIT_SECONDS)
        except (StorageError, TimeoutError) as exc:
            logger.debug("the call's records are committed later (%r)", exc)

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> Any:
        started = self.started.take(request_data)
        if started is not None:
            try:
                started.call.failed(original_exception)
            except Exception as exc:
                guard.report("a failed proxy call", exc)
        return None
