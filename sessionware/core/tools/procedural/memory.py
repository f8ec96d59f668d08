"""``ProceduralMemory``: what a session's tool calls taught, for the model to read before calling again.

It is a fold over the session's ``TOOL_CALL`` events (see ``ToolLedger``): every
executed call is logged with its outcome, summarised result and timing; a success that
follows a failure of the same tool with different arguments is linked to it as a fix,
with the argument delta; each tool keeps a pattern (success rate, latency, error kinds
and their last fix). Calls a guard blocked, cached answers and calls of unknown tools
are not executions and are not counted.

Persistence: the memory has no storage of its own. The events it folds are the
session's append-only log, so reloading a session (from SQLite, Redis...) rebuilds the
same memory by replaying them, and nothing can drift out of sync with the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from sessionware.core.tools.models import ToolStatus
from sessionware.core.tools.procedural.format import format_hints
from sessionware.core.tools.procedural.models import (
    ArgumentDelta,
    FixRecord,
    ProceduralStats,
    ToolLogEntry,
    ToolOutcome,
    ToolPattern,
)
from sessionware.core.tools.records import ToolRecord
from sessionware.core.tools.text import args_key, summarize, truncate

__all__ = ["ProceduralMemory"]

_OUTCOMES = {
    ToolStatus.SUCCESS: ToolOutcome.SUCCESS,
    ToolStatus.ERROR: ToolOutcome.FAILURE,
    ToolStatus.INVALID_ARGUMENTS: ToolOutcome.FAILURE,
    ToolStatus.TIMEOUT: ToolOutcome.TIMEOUT,
}


class ProceduralMemory:
    """Per-tool history, patterns and fixes of one session.

    >>> from sessionware.core.tools.records import ToolRecord
    >>> from sessionware.core.session.models import ErrorInfo
    >>> memory = ProceduralMemory()
    >>> _ = memory.observe(ToolRecord(seq=1, turn=1, call_id="c1", tool="convert",
    ...     arguments={"unit": "kelvin"}, args_key="1", status=ToolStatus.ERROR,
    ...     error=ErrorInfo(type="ValueError", message="unknown unit")))
    >>> _ = memory.observe(ToolRecord(seq=2, turn=1, call_id="c2", tool="convert",
    ...     arguments={"unit": "K"}, args_key="2", status=ToolStatus.SUCCESS, result=276.15))
    >>> memory.fix_for("convert", "ValueError").describe()
    'change unit "kelvin" -> "K"'
    """

    def __init__(self, *, max_recent: int = 20, fix_window: int = 10, max_error_types: int = 20) -> None:
        self.max_recent = max_recent
        self.fix_window = fix_window
        self.max_error_types = max_error_types
        self._patterns: dict[str, ToolPattern] = {}
        self._recent: dict[str, deque[ToolLogEntry]] = {}
        self._window: deque[ToolLogEntry] = deque(maxlen=fix_window)
        self._fixes: list[FixRecord] = []
        self._order: list[str] = []  # tools by most recent use, newest last

    def observe(self, record: ToolRecord) -> ToolLogEntry | None:
        """Log one executed call; returns its entry (None for calls that did not execute)."""
        outcome = _OUTCOMES.get(record.status)
        if outcome is None or record.cached:
            return None
        error = record.error
        entry = ToolLogEntry(
            call_id=record.call_id,
            seq=record.seq,
            tool=record.tool,
            arguments=record.arguments,
            outcome=outcome,
            summary=truncate(f"{error.type}: {error.message}", 100) if error else summarize(record.result),
            error_type=(error.type if error else "ToolError") if outcome.failed else None,
            latency_ms=record.latency_ms,
            attempts=record.attempts,
        )
        pattern = self._patterns.get(record.tool)
        if pattern is None:
            pattern = self._patterns[record.tool] = ToolPattern(tool=record.tool)
        self._count(pattern, entry, record)
        if outcome is ToolOutcome.SUCCESS:
            self._link_fix(pattern, entry)
        self._recent.setdefault(record.tool, deque(maxlen=self.max_recent)).append(entry)
        self._window.append(entry)
        if record.tool in self._order:
            self._order.remove(record.tool)
        self._order.append(record.tool)
        return entry

    def _count(self, pattern: ToolPattern, entry: ToolLogEntry, record: ToolRecord) -> None:
        pattern.calls += 1
        if record.latency_ms is not None:
            pattern.timed_calls += 1
            pattern.total_latency_ms += record.latency_ms
        if entry.outcome is ToolOutcome.SUCCESS:
            pattern.successes += 1
            pattern.last_success_arguments = record.arguments
            return
        pattern.failures += 1
        if entry.outcome is ToolOutcome.TIMEOUT:
            pattern.timeouts += 1
        message = record.error.message if record.error else entry.summary
        pattern.add_error(entry.error_type or "ToolError", message, max_types=self.max_error_types)

    def _link_fix(self, pattern: ToolPattern, success: ToolLogEntry) -> None:
        key = args_key(success.arguments)
        for earlier in reversed(self._window):
            if earlier.tool != success.tool:
                continue
            if not earlier.outcome.failed:
                return  # an earlier success already ended the run of failures
            if earlier.fixed_by is not None or earlier.error_type is None:
                continue
            if args_key(earlier.arguments) == key:
                return  # same arguments: the failure was transient, not fixed
            delta = ArgumentDelta.between(earlier.arguments, success.arguments)
            earlier.fixed_by = success.call_id or f"#{success.seq}"
            success.fix_for = earlier.call_id or f"#{earlier.seq}"
            success.delta = delta
            self._fixes.append(
                FixRecord(
                    tool=success.tool,
                    failed_call_id=earlier.call_id,
                    fixed_call_id=success.call_id,
                    error_type=earlier.error_type,
                    delta=delta,
                )
            )
            error = pattern.errors.get(earlier.error_type)
            if error is not None:
                error.fix = delta
                error.fixes += 1
            return

    # -- queries --------------------------------------------------------------------------

    def pattern(self, tool: str) -> ToolPattern | None:
        return self._patterns.get(tool)

    def patterns(self) -> dict[str, ToolPattern]:
        return dict(self._patterns)

    def recent(self, tool: str, limit: int = 5) -> list[ToolLogEntry]:
        """The last ``limit`` calls of ``tool``, oldest first."""
        entries = self._recent.get(tool, ())
        return list(entries)[-limit:] if limit > 0 else []

    def fixes(self, tool: str | None = None) -> list[FixRecord]:
        return [f for f in self._fixes if tool is None or f.tool == tool]

    def fix_for(self, tool: str, error_type: str) -> ArgumentDelta | None:
        """The last argument change that fixed ``error_type`` for ``tool``."""
        pattern = self._patterns.get(tool)
        error = pattern.errors.get(error_type) if pattern else None
        return error.fix if error else None

    def tools(self) -> list[str]:
        """Tools with history, most recently used first."""
        return list(reversed(self._order))

    def stats(self) -> ProceduralStats:
        patterns = self._patterns.values()
        return ProceduralStats(
            total_calls=sum(p.calls for p in patterns),
            successes=sum(p.successes for p in patterns),
            failures=sum(p.failures for p in patterns),
            fixes=len(self._fixes),
            tools=len(self._patterns),
        )

    def format_hints(
        self, tool_names: Collection[str] | None = None, *, max_recent: int = 3, max_errors: int = 3
    ) -> str:
        """The ``<procedural_memory>`` block for ``tool_names`` (all tools with history by
        default); "" when none of them has history. See ``procedural.format``."""
        return format_hints(self, tool_names, max_recent=max_recent, max_errors=max_errors)
