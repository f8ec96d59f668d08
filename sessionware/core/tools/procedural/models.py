"""Typed data of procedural memory: log entries, argument deltas, per-tool patterns, fixes."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.tools.text import compact_args, truncate

__all__ = [
    "ArgumentDelta",
    "ErrorPattern",
    "FixRecord",
    "ProceduralStats",
    "ToolLogEntry",
    "ToolOutcome",
    "ToolPattern",
    "ValueChange",
]

_CHARS = 24


def _show(value: Any) -> str:
    """One short value, rendered as ``compact_args`` renders it."""
    return compact_args({"_": value}, value_chars=_CHARS)[2:]


class ToolOutcome(StrEnum):
    """How an executed call ended, as procedural memory counts it."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"

    @property
    def failed(self) -> bool:
        return self is not ToolOutcome.SUCCESS


class ValueChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    before: Any
    after: Any


class ArgumentDelta(BaseModel):
    """How the arguments of a successful call differ from those of the failure it fixed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    added: dict[str, Any] = Field(default_factory=dict)
    removed: tuple[str, ...] = ()
    changed: dict[str, ValueChange] = Field(default_factory=dict)

    @classmethod
    def between(cls, before: Any, after: Any) -> ArgumentDelta:
        """The delta from ``before`` to ``after`` (non-object arguments count as one value ``_``).

        >>> ArgumentDelta.between({"city": "Pariss", "x": 1}, {"city": "Paris", "unit": "C"}).describe()
        'add unit="C"; remove x; change city "Pariss" -> "Paris"'
        """
        old = dict(before) if isinstance(before, Mapping) else {"_": before}
        new = dict(after) if isinstance(after, Mapping) else {"_": after}
        return cls(
            added={k: v for k, v in new.items() if k not in old},
            removed=tuple(k for k in old if k not in new),
            changed={
                k: ValueChange(before=old[k], after=new[k]) for k in new if k in old and old[k] != new[k]
            },
        )

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def describe(self) -> str:
        parts = [f"add {k}={_show(v)}" for k, v in self.added.items()]
        if self.removed:
            parts.append(f"remove {', '.join(self.removed)}")
        parts.extend(f"change {k} {_show(c.before)} -> {_show(c.after)}" for k, c in self.changed.items())
        return "; ".join(parts)


class ToolLogEntry(BaseModel):
    """One executed call as procedural memory remembers it."""

    model_config = ConfigDict(extra="forbid")

    call_id: str | None
    seq: int
    tool: str
    arguments: Any
    outcome: ToolOutcome
    summary: str
    """The result summarised in one line, or ``ErrorType: message`` for a failure."""
    error_type: str | None = None
    latency_ms: float | None = None
    attempts: int = 1
    fixed_by: str | None = None
    """For a failure: the call id of the later success that fixed it."""
    fix_for: str | None = None
    """For a success: the call id of the failure it fixed."""
    delta: ArgumentDelta | None = None
    """For a fix: what changed in the arguments."""

    def line(self) -> str:
        """``[✓] tool(args) -> summary`` with the fix noted (the format of ``format_hints``)."""
        mark = "✓" if self.outcome is ToolOutcome.SUCCESS else "✗"
        text = f"[{mark}] {self.tool}({compact_args(self.arguments)}) -> {self.summary}"
        if self.delta is not None and self.fix_for is not None:
            text += f"  (fixed: {self.delta.describe()})"
        elif self.fixed_by is not None:
            text += "  (fixed later)"
        return text


class ErrorPattern(BaseModel):
    """A kind of failure of one tool, how often it happened and the last fix seen."""

    model_config = ConfigDict(extra="forbid")

    error_type: str
    count: int = 0
    last_message: str = ""
    fix: ArgumentDelta | None = None
    fixes: int = 0


class ToolPattern(BaseModel):
    """What one tool's history says: call counts, success rate, latency, errors and fixes."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    calls: int = 0
    successes: int = 0
    failures: int = 0
    """Failed calls, timeouts included."""
    timeouts: int = 0
    timed_calls: int = 0
    total_latency_ms: float = 0.0
    errors: dict[str, ErrorPattern] = Field(default_factory=dict)
    last_success_arguments: Any = None

    @property
    def success_rate(self) -> float:
        return self.successes / self.calls if self.calls else 0.0

    @property
    def avg_latency_ms(self) -> float | None:
        return self.total_latency_ms / self.timed_calls if self.timed_calls else None

    def top_errors(self, limit: int) -> list[ErrorPattern]:
        return sorted(self.errors.values(), key=lambda e: -e.count)[:limit]

    def add_error(self, error_type: str, message: str, *, max_types: int) -> None:
        pattern = self.errors.get(error_type)
        if pattern is None:
            if len(self.errors) >= max_types:
                return
            pattern = self.errors[error_type] = ErrorPattern(error_type=error_type)
        pattern.count += 1
        pattern.last_message = truncate(message, 120)


class FixRecord(BaseModel):
    """A failure followed by a success of the same tool with changed arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    failed_call_id: str | None
    fixed_call_id: str | None
    error_type: str
    delta: ArgumentDelta


class ProceduralStats(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    total_calls: int
    successes: int
    failures: int
    fixes: int
    tools: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.total_calls if self.total_calls else 0.0
