"""Sessions, their events and runs: the data every other part reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.session.enums import EventSource, EventType, Role, RunStatus

__all__ = [
    "ErrorInfo",
    "EventDraft",
    "EventFields",
    "MessageContent",
    "Session",
    "SessionEvent",
    "SessionInfo",
    "SessionRun",
    "SessionTotals",
    "ToolCall",
    "trusted_event",
    "utcnow",
]

#: A message body: plain text, or provider content parts (text, images, tool blocks).
MessageContent = str | list[dict[str, Any]] | None


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


class ToolCall(BaseModel):
    """A tool call the model asked for. ``arguments`` is the JSON text it produced."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    name: str
    arguments: str = "{}"


class ErrorInfo(BaseModel):
    """An error attached to an event: a failed tool or a failed provider call."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    type: str
    message: str
    status_code: int | None = None


class SessionEvent(BaseModel):
    """One immutable entry of a session's append-only log.

    ``seq`` numbers events of a session from 1 without gaps; the store assigns it at
    commit (a live session's own events carry a provisional one until then, see
    ``SessionState``), and ``id`` is an event's identity everywhere. Message events carry a
    ``role`` and ``content``; an assistant message may carry ``tool_calls``; a tool
    result message carries ``tool_call_id``. ``TOOL_CALL`` events (recorded with
    ``SessionManager.tool_used``) carry the tool's name, arguments and result.
    Events of a provider call carry its usage, cost, model, latency and finish reason.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    session_id: str
    seq: int = Field(ge=1)
    timestamp: datetime
    type: EventType
    source: EventSource
    role: Role | None = None
    content: MessageContent = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_arguments: Any = None
    tool_result: Any = None
    usage: TokenUsage | None = None
    cost: Decimal | None = None
    model: str | None = None
    provider: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    finish_reason: str | None = None
    error: ErrorInfo | None = None
    hidden: bool = False
    """True for calls the app never saw (page-fault rounds, summaries by a model)."""
    app_input_tokens: int | None = None
    """Tokens of the request as the app built it, when sessionware sent something else."""
    branch_of: int | None = None
    """For ``BRANCH`` events: the last ``seq`` the edited history still agrees with."""
    run_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    repaired: tuple[str, ...] = ()
    """Fields whose text the store repaired to hold it (lone surrogates became U+FFFD)."""

    @property
    def text(self) -> str:
        """The event's text content; parts are joined, non-text parts skipped."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict) and "text" in p)


class EventFields(TypedDict, total=False):
    """The optional fields of a ``SessionEvent``: what a recorder passes to
    ``SessionState.record`` (typed, so a misspelt field is a type error, not a silent loss)."""

    role: Role | None
    content: MessageContent
    name: str | None
    tool_calls: tuple[ToolCall, ...]
    tool_call_id: str | None
    tool_name: str | None
    tool_arguments: Any
    tool_result: Any
    usage: TokenUsage | None
    cost: Decimal | None
    model: str | None
    provider: str | None
    latency_ms: float | None
    ttft_ms: float | None
    finish_reason: str | None
    error: ErrorInfo | None
    hidden: bool
    app_input_tokens: int | None
    branch_of: int | None
    run_id: str | None
    metadata: dict[str, Any]


EventDraft = tuple[EventType, EventSource, EventFields]
"""An event not recorded yet: its type, source and fields (``SessionState.record_many``)."""

_new = object.__new__
_set = object.__setattr__
# Defaults of SessionEvent's optional fields, for ``trusted_event``; ``metadata`` is the
# only one built by a factory and gets a fresh dict per event.
_EVENT_DEFAULTS: dict[str, Any] = {
    name: field.default
    for name, field in SessionEvent.model_fields.items()
    if not field.is_required() and field.default_factory is None
}


# Shared by every trusted event: frozen events never change it, and pydantic copies it
# before a ``model_copy(update=...)`` touches it. Saves a tracked set per event.
_ALL_EVENT_FIELDS = set(SessionEvent.model_fields)


def trusted_event(  # noqa: PLR0917 - positional: called once per recorded event
    fields: EventFields,
    event_id: str,
    session_id: str,
    seq: int,
    timestamp: datetime,
    type_: EventType,
    source: EventSource,
) -> SessionEvent:
    """A ``SessionEvent`` from fields that are already valid, built without validation.

    The recording hot path: what ``model_construct`` does, without resolving every
    default on every call (a third of the cost of recording a message). ``fields``
    holds the optional fields set; ``SessionState`` is the one caller.
    """
    values = _EVENT_DEFAULTS.copy()
    values["metadata"] = {}
    values.update(fields)
    values["id"] = event_id
    values["session_id"] = session_id
    values["seq"] = seq
    values["timestamp"] = timestamp
    values["type"] = type_
    values["source"] = source
    event = _new(SessionEvent)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", _ALL_EVENT_FIELDS)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


class SessionRun(BaseModel):
    """A unit of work inside a session (an agent task), with a status and timing."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    status: RunStatus = RunStatus.PENDING
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class SessionTotals(BaseModel):
    """Running totals of a session, folded from its events (see ``fold``)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    events: int = 0
    messages_by_role: dict[Role, int] = Field(default_factory=dict)
    tool_calls: int = 0
    llm_calls: int = 0
    errors: int = 0
    page_faults: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost: Decimal = Decimal(0)
    unpriced_calls: int = 0
    hidden_usage: TokenUsage = Field(default_factory=TokenUsage)
    hidden_cost: Decimal = Decimal(0)
    app_input_tokens: int = 0
    """Sum over managed calls of what the app asked to send (compare ``managed_input_tokens``)."""
    managed_input_tokens: int = 0
    """Input tokens the provider reported for those same managed calls (what was sent)."""
    models: dict[str, int] = Field(default_factory=dict)

    def fold(self, event: SessionEvent) -> None:
        """Add one event to the totals (in place; events are folded exactly once)."""
        # Once per recorded event, so fields are read and updated in the models'
        # ``__dict__`` directly: an attribute of a pydantic model goes through a type
        # lookup and its ``__getattr__`` hook (~50 ns each, a dozen per event), and
        # pydantic's __setattr__ adds ~0.3 us of bookkeeping per field. Enum members are
        # module constants (an Enum attribute lookup costs ~70 ns).
        d = self.__dict__
        e = event.__dict__
        d["events"] += 1
        type_, role = e["type"], e["role"]
        if type_ is _MESSAGE and role is not None:
            by_role = d["messages_by_role"]
            by_role[role] = by_role.get(role, 0) + 1
        # A tool call counts once, when its result is recorded (by ``tool_used`` or as
        # the app's tool message), not when the model asks for it.
        if type_ is _TOOL_CALL or role is _TOOL:
            d["tool_calls"] += 1
        if type_ is _PAGE_FAULT:
            d["page_faults"] += 1
        if e["error"] is not None:  # a failed provider call, or a tool call that failed
            d["errors"] += 1
        usage = e["usage"]
        if usage is not None or (e["model"] is not None and e["source"] is _LLM):
            self._fold_call(e, d, usage)

    @staticmethod
    def _fold_call(e: dict[str, Any], d: dict[str, Any], usage: TokenUsage | None) -> None:
        d["llm_calls"] += 1
        model = e["model"]
        if model:
            models = d["models"]
            models[model] = models.get(model, 0) + 1
        app_input = e["app_input_tokens"]
        if app_input is not None:
            d["app_input_tokens"] += app_input
            if usage is not None:
                d["managed_input_tokens"] += usage.input_tokens
        if usage is None:
            return
        cost = e["cost"]
        if e["hidden"]:
            d["hidden_usage"] = d["hidden_usage"] + usage
            d["hidden_cost"] = d["hidden_cost"] + (cost or 0)
        d["usage"] = d["usage"] + usage
        if cost is None:
            d["unpriced_calls"] += 1
        else:
            d["cost"] = d["cost"] + cost


_MESSAGE, _TOOL_CALL, _PAGE_FAULT = EventType.MESSAGE, EventType.TOOL_CALL, EventType.PAGE_FAULT
_TOOL, _LLM = Role.TOOL, EventSource.LLM


class SessionInfo(BaseModel):
    """A session's header and totals, without its events (what ``list`` returns)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    parent_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    system_prompt: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    runs: list[SessionRun] = Field(default_factory=list)
    totals: SessionTotals = Field(default_factory=SessionTotals)
    last_seq: int = 0


class Session(SessionInfo):
    """A session with its children and its full event log, as loaded from a store."""

    children: list[str] = Field(default_factory=list)
    events: list[SessionEvent] = Field(default_factory=list)
