"""``ToolLedger``: the tool-related state of one session, folded from its events.

One ledger lives in each ``SessionState`` (under ``extensions["sessionware.tools"]``),
fed by a listener on every recorded event, whoever records it: a ``ToolRunner``, a
wrapped tool processor, ``SessionManager.tool_used``, a wrapped client. Every tool run
the session sees counts: a ``TOOL_CALL`` event, and a tool the app ran itself, seen as
the assistant's tool call followed by the app's tool message with that call id. It
keeps what guards and procedural memory need:

* the current turn (the number of user messages so far) and per-tool call counts for
  the turn and the session;
* recent tool records (``ToolRecord``) for runaway detection;
* the numbers seen in user messages, the system prompt and tool results (what an
  argument may be grounded in);
* the ``$vN`` bindings and the procedural memory.

Because it is a fold over the log, reloading a session rebuilds the same ledger.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.state import SessionState
from sessionware.core.tools.bindings import Binding, BindingTable, bindable
from sessionware.core.tools.models import ToolStatus
from sessionware.core.tools.procedural.memory import ProceduralMemory
from sessionware.core.tools.records import (
    ToolRecord,
    decode_arguments,
    record_from_event,
    record_from_message,
)
from sessionware.core.tools.text import args_key, iter_numbers, number_key, numbers_in_text

__all__ = ["EXTENSION_KEY", "ToolLedger", "ledger_for"]

logger = logging.getLogger(__name__)

EXTENSION_KEY = "sessionware.tools"
_MAX_ASKED = 256


class ToolLedger:
    """Tool state of one session (see the module docstring). Callers hold the session lock
    (``SessionState.lock``) when they read it during a guard check or write it."""

    def __init__(self, *, max_records: int = 2000, max_grounded: int = 50_000) -> None:
        self.turn = 0
        self.records: deque[ToolRecord] = deque(maxlen=max_records)
        self.bindings = BindingTable()
        self.memory = ProceduralMemory()
        self.turn_counts: Counter[str] = Counter()
        self.session_counts: Counter[str] = Counter()
        self.internal_errors = 0
        """Events the ledger failed to fold (logged); recording itself never fails because of it."""
        self._max_grounded = max_grounded
        self._grounded: dict[float, None] = {}  # insertion-ordered set; oldest dropped first
        # Texts and results whose numbers are not read yet, in the order they were seen: read
        # on the first grounding check, so replaying a long log (a process meeting a stored
        # session) does not scan every message for numbers when no guard ever asks.
        self._unread: list[Any] = []
        self._max_unread = max_grounded
        self._turn_results: set[str] = set()
        self._turn_calls: set[tuple[str, str]] = set()
        # Tool calls the assistant asked for that no tool run answered yet: id -> (tool, arguments).
        self._asked: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._seq = 0

    # -- folding -------------------------------------------------------------------------

    def observe(self, event: SessionEvent) -> None:
        """Fold one session event. A session listener: it logs its own failures and never raises."""
        try:
            self._observe(event)
        except Exception:
            self.internal_errors += 1
            logger.exception("tool ledger failed to fold event %s of session %s", event.seq, event.session_id)

    def _observe(self, event: SessionEvent) -> None:
        self._seq = max(self._seq, event.seq)
        if event.type is EventType.TOOL_CALL:
            if event.tool_call_id:
                self._asked.pop(event.tool_call_id, None)
            record = record_from_event(event, turn=self.turn, novel=False)
            novel = self.is_novel(record.tool, record.args_key, record.result) and event.error is None
            self.apply(replace(record, novel=novel) if novel else record)
        elif event.type is EventType.MESSAGE and event.role is Role.ASSISTANT and event.tool_calls:
            for call in event.tool_calls:
                self._asked[call.id] = (call.name, decode_arguments(call.arguments))
            while len(self._asked) > _MAX_ASKED:
                self._asked.popitem(last=False)
        elif event.type is EventType.MESSAGE and event.role is Role.TOOL and event.tool_call_id:
            self._defer(event.text)
            asked = self._asked.pop(event.tool_call_id, None)
            if asked is not None:  # a tool the app ran itself, answering the model's call
                tool, arguments = asked
                record = record_from_message(
                    event, tool=tool, arguments=arguments, turn=self.turn, novel=False
                )
                novel = self.is_novel(tool, record.args_key, record.result)
                self.apply(replace(record, novel=novel and record.error is None))
        elif event.type is EventType.MESSAGE and event.role is Role.USER:
            self.start_turn()
            self._defer(event.text)
        elif event.type is EventType.SYSTEM_PROMPT or (
            event.type is EventType.MESSAGE and event.role is Role.TOOL
        ):
            # A tool result the app produced itself grounds numbers just as ours do.
            self._defer(event.text)

    def replay(self, events: Iterable[SessionEvent]) -> None:
        """``observe`` each of ``events`` (a log read at once). The assistant's answers
        without tool calls, half of a long conversation, fold to nothing but their
        ``seq``: they are passed over here."""
        message, assistant = EventType.MESSAGE, Role.ASSISTANT
        observe = self.observe
        top = self._seq
        for event in events:
            if event.type is message and event.role is assistant and not event.tool_calls:
                top = max(top, event.seq)
                continue
            observe(event)
        self._seq = max(self._seq, top)

    def start_turn(self) -> None:
        """A new user turn: what is counted per turn starts again (a user message does this;
        a runner used without a session, which sees no user messages, at each message)."""
        self.turn += 1
        self.turn_counts.clear()
        self._turn_results.clear()
        self._turn_calls.clear()

    def apply(self, record: ToolRecord) -> None:
        """Fold one tool record (from an event, or directly when no session logs it)."""
        self._seq = max(self._seq, record.seq)
        self.records.append(record)
        if record.status is ToolStatus.BLOCKED:
            return
        self.turn_counts[record.tool] += 1
        self.session_counts[record.tool] += 1
        self._turn_calls.add((record.tool, record.args_key))
        if record.status is ToolStatus.SUCCESS:
            self._turn_results.add(args_key(record.result))
            self._defer(record.result)
            if record.binding and bindable(record.result):
                binding = Binding(
                    id=record.binding,
                    value=record.result,
                    tool=record.tool,
                    arguments=record.arguments,
                    call_id=record.call_id,
                )
                self.bindings.add(binding, record.args_key)
        self.memory.observe(record)

    def ground(self, numbers: Any) -> None:
        """Remember numbers an argument may legitimately repeat."""
        self._read()
        self._ground(numbers)

    def _defer(self, value: Any) -> None:
        """Ground the numbers of ``value`` when a check first needs them (bounded: a result
        is held only here until then)."""
        self._unread.append(value)
        if len(self._unread) > self._max_unread:
            self._read()

    def _read(self) -> None:
        unread, self._unread = self._unread, []
        for value in unread:
            self._ground(iter_numbers(value))

    def _ground(self, numbers: Any) -> None:
        for value in numbers:
            key = number_key(value)
            if key in self._grounded:
                continue
            self._grounded[key] = None
            if len(self._grounded) > self._max_grounded:
                del self._grounded[next(iter(self._grounded))]

    def next_seq(self) -> int:
        """A sequence number for a record no session numbers (a runner used without a session)."""
        self._seq += 1
        return self._seq

    # -- reading -------------------------------------------------------------------------

    def is_grounded(self, value: float) -> bool:
        if self._unread:
            self._read()
        return number_key(value) in self._grounded

    def turn_records(self) -> list[ToolRecord]:
        """Records of the current turn, oldest first."""
        out: list[ToolRecord] = []
        for record in reversed(self.records):
            if record.turn != self.turn:
                break
            out.append(record)
        out.reverse()
        return out

    def is_novel(self, tool: str, arguments_key: str, result: Any) -> bool:
        """Whether a successful call brings something new this turn: a call not made
        before (a write with new content is progress) or a result not seen before."""
        return (tool, arguments_key) not in self._turn_calls or args_key(result) not in self._turn_results


def ledger_for(state: SessionState) -> ToolLedger:
    """The ledger of a session, created on first use by replaying its events."""
    ledger = state.extensions.get(EXTENSION_KEY)
    if isinstance(ledger, ToolLedger):
        return ledger
    with state.lock:
        ledger = state.extensions.get(EXTENSION_KEY)
        if not isinstance(ledger, ToolLedger):
            ledger = ToolLedger()
            if state.info.system_prompt:
                ledger.ground(numbers_in_text(state.info.system_prompt))
            ledger.replay(state.events)
            state.add_listener(ledger.observe)
            state.extensions[EXTENSION_KEY] = ledger
    return ledger
