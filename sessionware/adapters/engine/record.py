"""From one intercepted call to session events: resolve, diff, record.

Apps re-send their whole history on every call. Per session, a ``ThreadIndex`` (kept in
``SessionState.extensions``) holds the identity of each message of the current branch,
derived from the event log itself, so it also follows events recorded by a
``SessionManager`` or another process' earlier run. A request's messages are compared
with it:

* the known history followed by new messages: only the new ones are recorded;
* the known history with its oldest messages dropped (a sliding window): the same;
* anything else is an edit: a ``BRANCH`` event marks the last message both agree on,
  then the request's messages after that point are recorded.

The diff and the appends run under the session lock in one ``record_many``, so
concurrent calls of one session cannot interleave their halves.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sessionware.adapters.engine.messages import content_text, event_key, message_key, message_keys, usage_of
from sessionware.adapters.engine.types import CallOutput, CallRequest, EndpointKind, WireMessage
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ErrorInfo, EventDraft, EventFields, SessionEvent, ToolCall
from sessionware.core.session.state import SessionState

__all__ = ["CallFacts", "ThreadIndex", "estimate_usage", "record_call", "record_hidden", "request_drafts"]

logger = logging.getLogger(__name__)

EXTENSION = "sessionware.adapters.thread"
# Above this many characters, a missing usage is estimated from length instead of with
# the tokenizer (about 0.7 CPU-s a MiB): the prompt as a whole, and each text of the
# answer on its own, so finalising a call never stalls an event loop or the recorder
# thread (a 32 MiB answer, from openai 3.63's own suite, took 36 CPU-s to count).
_EXACT_COUNT_LIMIT = 32_000
_ERROR_MESSAGE_LIMIT = 2_000
# How far apart the clocks of hosts sharing a store may be (see ``_answered_already``).
_CLOCK_SKEW = timedelta(seconds=5)

Draft = EventDraft


class ThreadIndex:
    """Identities and ``seq`` of the current branch's conversation messages."""

    __slots__ = ("keys", "prompt", "seqs", "synced")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.seqs: list[int] = []
        self.prompt: Any = None
        """The content of the session's last ``SYSTEM_PROMPT`` event."""
        self.synced = 0

    @classmethod
    def of(cls, state: SessionState) -> ThreadIndex:
        """The index of ``state``, caught up with its log (call under ``state.lock``)."""
        index = state.extensions.get(EXTENSION)
        if index is None:
            index = state.extensions[EXTENSION] = cls()
        index.sync(state.events)
        return index

    def rewound(self) -> None:
        """The session's log was rewritten in place (``SessionState.follow``): re-read it all."""
        self.keys.clear()
        self.seqs.clear()
        self.prompt = None
        self.synced = 0

    def sync(self, events: list[SessionEvent]) -> None:
        keys, seqs, message = self.keys, self.seqs, EventType.MESSAGE
        for i in range(self.synced, len(events)):
            event = events[i]
            role, content = event.role, event.content
            if (
                event.type is message
                and content.__class__ is str
                and role is not None
                and not event.tool_calls
                and not event.tool_call_id
            ):
                # ``event_key`` of a plain text message, inlined: a process meeting a long
                # stored session keys every one of its messages here on its first call.
                keys.append(hash((role, content, (), "")))
                seqs.append(event.seq)
                continue
            if event.type is EventType.BRANCH and event.branch_of is not None:
                cut = bisect_right(self.seqs, event.branch_of)
                del self.keys[cut:]
                del self.seqs[cut:]
                continue
            if event.type is EventType.SYSTEM_PROMPT:
                self.prompt = event.content
                continue
            key = event_key(event)
            if key is not None:
                self.keys.append(key)
                self.seqs.append(event.seq)
        self.synced = len(events)

    def diff(self, keys: list[int]) -> tuple[int, int | None]:
        """Where the new messages of a request start, and the branch point if edited."""
        known = self.keys
        n = len(known)
        if keys[:n] == known:
            return n, None
        if not keys:
            return 0, None
        first = keys[0]
        best_at, best_run = -1, 0
        for at in (i for i, k in enumerate(known) if k == first):
            overlap = n - at
            if keys[:overlap] == known[at:]:
                return overlap, None  # the app dropped its oldest messages
            run = 1
            limit = min(len(keys), overlap)
            while run < limit and keys[run] == known[at + run]:
                run += 1
            if run > best_run:
                best_at, best_run = at, run
        if best_at < 0:
            return 0, 0
        return best_run, self.seqs[best_at + best_run - 1]


@dataclass(slots=True)
class CallFacts:
    """Everything about one call that is not its output."""

    provider: str
    kind: EndpointKind
    request: CallRequest
    stream: bool
    latency_ms: float
    ttft_ms: float | None = None
    end: str | None = None
    """How an incomplete stream ended: ``closed``, ``abandoned`` or ``error``."""
    extra_fields: EventFields | None = None


def _tool_calls(message: WireMessage | CallOutput) -> tuple[ToolCall, ...]:
    return tuple(ToolCall.model_construct(id=c.id, name=c.name, arguments=c.arguments) for c in message.calls)


def _message_draft(message: WireMessage) -> Draft:
    fields: EventFields = {"role": message.role, "content": message.content}
    if message.name:
        fields["name"] = message.name
    if message.role is Role.ASSISTANT:
        fields["tool_calls"] = _tool_calls(message)
        return EventType.MESSAGE, EventSource.LLM, fields
    if message.role is Role.TOOL:
        fields["tool_call_id"] = message.call_id
        return EventType.MESSAGE, EventSource.TOOL, fields
    if message.role is Role.SYSTEM:
        return EventType.MESSAGE, EventSource.SYSTEM, fields
    return EventType.MESSAGE, EventSource.USER, fields


def _request_drafts(state: SessionState, request: CallRequest) -> list[Draft]:
    drafts: list[Draft] = []
    index = ThreadIndex.of(state)
    system = request.system
    if system is not None and system != index.prompt:
        # A new session got its prompt in its header at creation: only the event is missing.
        if system != state.info.system_prompt:
            state.save_header(system_prompt=system)
        drafts.append((EventType.SYSTEM_PROMPT, EventSource.SYSTEM, {"role": Role.SYSTEM, "content": system}))
    if request.continues is not None:
        drafts.extend(_message_draft(m) for m in request.messages)
        return drafts
    keys = request.keys if request.keys is not None else message_keys(request.messages)
    if not keys:
        return drafts
    start, branch_of = index.diff(keys)
    if branch_of is not None:
        drafts.append((EventType.BRANCH, EventSource.USER, {"branch_of": branch_of}))
    if start < len(keys):
        drafts.extend(_message_draft(m) for m in request.messages_from(start))
    return drafts


def _answered_already(
    state: SessionState, request: CallRequest, output: CallOutput, latency_ms: float
) -> int | None:
    """The ``seq`` of the answer ``output`` when this call was recorded late, else None.

    Workers of a proxy fleet (processes sharing a store) record a call after answering
    it, so the next turn of the conversation, answered by another worker, can reach the
    store first, carrying this call's messages and answer in its history. The call is
    late when the session holds its whole conversation, then its answer, then a message
    recorded after the call began (within ``_CLOCK_SKEW`` for hosts' clocks). An app that
    regenerates an answer sends its request again later than that, and branches.
    """
    index = ThreadIndex.of(state)
    if request.continues is not None or (request.system is not None and request.system != index.prompt):
        return None
    keys = request.keys if request.keys is not None else message_keys(request.messages)
    n = len(keys)
    if not keys or len(index.keys) < n + 2 or index.keys[:n] != keys:
        return None
    content = output.text if output.text else output.refusal
    if index.keys[n] != message_key(WireMessage(Role.ASSISTANT, content or None, tuple(output.calls))):
        return None
    after = index.seqs[n + 1]
    events = state.events
    following = events[after - 1] if 0 < after <= len(events) and events[after - 1].seq == after else None
    if following is None:
        following = next((e for e in events if e.seq == after), None)
    began = datetime.now(UTC) - timedelta(milliseconds=latency_ms) - _CLOCK_SKEW
    if following is None or following.timestamp < began:
        return None
    return index.seqs[n]


def request_drafts(state: SessionState, request: CallRequest) -> list[Draft]:
    """Drafts of the events ``request`` adds to the session (its system prompt if changed,
    a branch point if edited, its new messages); call under ``state.lock``. Managed mode
    records them before the answer, to build the context from the latest turn."""
    return _request_drafts(state, request)


def estimate_usage(request: CallRequest, output: CallOutput | None, model: str | None) -> TokenUsage:
    """Tokens of a call the provider reported no usage for, counted locally."""
    wire: list[dict[str, Any]] = []
    if request.system:
        wire.append({"role": "system", "content": request.system})
    wire.extend({"role": m.role.value, "content": content_text(m.content)} for m in request.messages)
    produced = [(output.text or output.refusal or "")] if output else []
    produced += [c.name + c.arguments for c in output.calls] if output else []
    size = sum(len(m["content"]) for m in wire)
    by_length = size // 4 + 4 * len(wire)
    try:
        counter = counter_for_model(model)
        input_tokens = (
            counter.count_messages(wire, request.tools or None) if size <= _EXACT_COUNT_LIMIT else by_length
        )
        output_tokens = sum(
            counter.count_text(text) if len(text) <= _EXACT_COUNT_LIMIT else _length_estimate(text)
            for text in produced
        )
    except Exception as exc:
        # The tokenizer is unavailable (a stream finalised by the garbage collector
        # during an import): count by length.
        logger.debug("token estimate by length for %s: %r", model, exc)
        input_tokens = by_length
        output_tokens = sum(_length_estimate(text) for text in produced)
    return usage_of(input_tokens, output_tokens, source=TokenSource.ESTIMATE)


def _length_estimate(text: str) -> int:
    return (len(text) + 3) // 4


def _call_fields(
    facts: CallFacts, output: CallOutput | None, prices: PriceBook, *, usage_needed: bool
) -> EventFields:
    model = (output.model if output else None) or facts.request.model
    usage = output.usage if output else None
    if usage is None and usage_needed:
        usage = estimate_usage(facts.request, output, model)
    metadata: dict[str, Any] = {"endpoint": facts.kind.value}
    if facts.stream:
        metadata["stream"] = True
    fields: EventFields = {
        "model": model,
        "provider": facts.provider,
        "latency_ms": facts.latency_ms,
        "metadata": metadata,
    }
    if usage is not None:
        fields["usage"] = usage
        fields["cost"] = prices.cost(model, usage, facts.provider)
    if facts.ttft_ms is not None:
        fields["ttft_ms"] = facts.ttft_ms
    if output is not None:
        if output.finish_reason:
            fields["finish_reason"] = output.finish_reason
        if output.response_id:
            metadata["response_id"] = output.response_id
        if output.refusal is not None:
            metadata["refusal"] = True
        if not output.complete:
            metadata["incomplete"] = True
        if output.extra:
            metadata.update(output.extra)
    if facts.end is not None:
        metadata["incomplete"] = True
        metadata["end"] = facts.end
    if facts.extra_fields:
        extra = facts.extra_fields
        if "metadata" in extra:  # added to the call's metadata, not in place of it
            metadata.update(extra["metadata"])
            extra = extra.copy()
            del extra["metadata"]
        fields.update(extra)
    return fields


def _output_draft(facts: CallFacts, output: CallOutput, prices: PriceBook) -> Draft:
    fields = _call_fields(facts, output, prices, usage_needed=True)
    content = output.text if output.text else output.refusal
    if not content and not output.calls:
        return EventType.LLM_CALL, EventSource.LLM, fields
    fields["role"] = Role.ASSISTANT
    fields["content"] = content or None
    fields["tool_calls"] = _tool_calls(output)
    return EventType.MESSAGE, EventSource.LLM, fields


def _error_draft(
    facts: CallFacts, error: BaseException, output: CallOutput | None, prices: PriceBook
) -> Draft:
    has_output = output is not None and bool(output.text or output.calls)
    fields = _call_fields(facts, output, prices, usage_needed=has_output)
    fields["error"] = ErrorInfo.model_construct(
        type=type(error).__name__,
        message=str(error)[:_ERROR_MESSAGE_LIMIT],
        status_code=getattr(error, "status_code", None),
    )
    if output is not None and has_output:
        fields["role"] = Role.ASSISTANT
        fields["content"] = output.text or None
        fields["tool_calls"] = _tool_calls(output)
        return EventType.MESSAGE, EventSource.LLM, fields
    return EventType.LLM_CALL, EventSource.LLM, fields


def record_call(
    state: SessionState,
    facts: CallFacts,
    prices: PriceBook,
    *,
    output: CallOutput | None = None,
    error: BaseException | None = None,
) -> list[SessionEvent]:
    """Record a finished call: the request's new messages, then its output or error.

    The request is compared with the session as the store has it: what other processes
    appended is taken in first (``SessionState.follow``), so a conversation whose calls
    land on several workers is recorded once. Reading and appending happen while the
    session is held (``SessionState.exclusive``) until the append is committed: two
    workers recording consecutive turns at the same moment would otherwise both find
    the earlier turn missing and both append it.
    """
    if not facts.request.conversational:
        return _record_inputs(state, facts, prices, output, error)
    with state.exclusive():
        state.follow()
        return _record_conversation(state, facts, prices, output, error)


def _record_conversation(
    state: SessionState,
    facts: CallFacts,
    prices: PriceBook,
    output: CallOutput | None,
    error: BaseException | None,
) -> list[SessionEvent]:
    with state.lock:
        late = (
            _answered_already(state, facts.request, output, facts.latency_ms)
            if error is None and output is not None
            else None
        )
        if late is not None:
            # The messages are in the log already (see ``_answered_already``): the call
            # itself is recorded, usage and cost included, pointing at its answer.
            fields = _call_fields(facts, output, prices, usage_needed=True)
            fields["metadata"]["answer_seq"] = late
            return [state.record(EventType.LLM_CALL, EventSource.LLM, **fields)]
        drafts = _request_drafts(state, facts.request)
        if error is not None:
            drafts.append(_error_draft(facts, error, output, prices))
        else:
            # No output at all (a body closed unread) is still a call the provider billed.
            drafts.append(_output_draft(facts, output or CallOutput(complete=False), prices))
        events = state.record_many(_fitted(drafts, state.max_event_bytes))
        ThreadIndex.of(state)
        return events


def _record_inputs(
    state: SessionState,
    facts: CallFacts,
    prices: PriceBook,
    output: CallOutput | None,
    error: BaseException | None,
) -> list[SessionEvent]:
    """A call with inputs and no conversation (embeddings): the call alone, or its error."""
    if error is not None:
        draft = _error_draft(facts, error, output, prices)
    else:
        fields = _call_fields(facts, output, prices, usage_needed=False)
        fields["metadata"]["inputs"] = facts.request.inputs
        draft = (EventType.LLM_CALL, EventSource.LLM, fields)
    with state.lock:
        events = state.record_many(_fitted([draft], state.max_event_bytes))
        ThreadIndex.of(state)
        return events


def _fitted(drafts: list[Draft], limit: int) -> list[Draft]:
    """``drafts`` with each text longer than the session's ``max_event_bytes`` cut to it,
    its whole length kept in the event's metadata (``cut_from_chars``). A reply of 32 MiB is
    a valid API payload (openai's own suite sends one): the session refuses an event over
    the limit, and the call, its usage and cost with it, would not be recorded at all."""
    for _, _, fields in drafts:
        for key in ("content", "tool_result", "tool_arguments"):
            value = fields.get(key)
            if isinstance(value, str) and len(value) > limit:
                fields[key] = value[:limit]
                metadata = fields.setdefault("metadata", {})
                metadata.setdefault("cut_from_chars", {})[key] = len(value)
    return drafts


def record_hidden(
    state: SessionState, facts: CallFacts, output: CallOutput, prices: PriceBook
) -> SessionEvent:
    """Record a round the app never saw (a managed-mode follow-up), usage included."""
    fields = _call_fields(facts, output, prices, usage_needed=True)
    fields["hidden"] = True
    if output.calls:
        fields["tool_calls"] = _tool_calls(output)
    return state.record(EventType.LLM_CALL, EventSource.LLM, **fields)
