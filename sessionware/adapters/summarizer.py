"""``ClientSummarizer``: summaries of evicted turns written by a model, through a client.

The virtual memory summarises the turns it compacts, offline and extractively by
default. ``ContextPolicy(summarize_fn=ClientSummarizer(client, model="gpt-4o-mini"))``
has a model write them instead, through a client of any provider in the provider table:
``OpenAI``/``AsyncOpenAI`` (chat completions), ``Anthropic``/``AsyncAnthropic`` (Messages),
or one added with ``add_provider`` (its adapter says how to ask). Each summary call is recorded in
the session being summarised as a ``hidden`` call with its usage and cost (so it shows
in ``hidden_cost``), and never as a conversation of its own, even through a wrapped
client.

Use a client of the same kind as the wrapped one: an async client for async apps, a
sync one for sync apps (managed sync clients run the summariser inline; an awaiting
summariser cannot run there, and the offline summaries are kept).

>>> from openai import AsyncOpenAI
>>> from sessionware.core.memory import ContextPolicy
>>> summarize = ClientSummarizer(AsyncOpenAI(api_key="sk-..."), model="gpt-4o-mini")
>>> policy = ContextPolicy(budget=8000, summarize_fn=summarize)
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from sessionware.adapters import providers
from sessionware.adapters.engine.funnel import suppress_recording
from sessionware.adapters.managed.hooks import summarizing_for
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.defaults import default_price_book
from sessionware.core.session.enums import EventSource, EventType

__all__ = ["ClientSummarizer"]

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTIONS = (
    "Summarise these earlier turns of a conversation for the assistant's memory. Keep every "
    "name, number, code, date, decision and open question exactly as written; drop chit-chat. "
    "Write plain sentences, at most {max_tokens} tokens."
)


class ClientSummarizer:
    """A ``SummarizeFn`` (``await fn(text, max_tokens) -> str``) backed by a model."""

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        instructions: str = DEFAULT_INSTRUCTIONS,
        prices: PriceBook | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.instructions = instructions
        self.prices = prices
        found = providers.row_of_client(client)
        # A client of no known provider is asked as an OpenAI one (chat completions).
        row = found[0] if found is not None else providers.provider_named(providers.Provider.OPENAI)
        assert row is not None
        self.adapter = providers.adapter_of(row)
        self.provider = self.adapter.spec_for(client).name
        """The provider id the summary calls are priced under."""

    async def __call__(self, text: str, max_tokens: int) -> str:
        prompt = self.instructions.format(max_tokens=max_tokens)
        started = time.perf_counter()
        with suppress_recording():
            made = self.adapter.summary_request(
                self.client, model=self.model, instructions=prompt, text=text, max_tokens=max_tokens
            )
            response = await made if inspect.isawaitable(made) else made
        summary, usage = self.adapter.summary_of(response)
        self._record(usage, (time.perf_counter() - started) * 1000.0, getattr(response, "model", None))
        return summary

    def _record(self, usage: TokenUsage | None, latency_ms: float, model: str | None) -> None:
        state = summarizing_for()
        if state is None or usage is None:
            return
        model = model or self.model
        provider = self.provider
        prices = self.prices or default_price_book()
        try:
            state.record(
                EventType.LLM_CALL,
                EventSource.LLM,
                model=model,
                provider=provider,
                usage=usage,
                cost=prices.cost(model, usage, provider),
                latency_ms=latency_ms,
                hidden=True,
                metadata={"purpose": "summary"},
            )
        except Exception:  # the summary is still good; only its bookkeeping failed
            logger.exception("could not record a summary call in session %s", state.id)
