"""The guard contract: a ``Guard`` looks at one call before it runs and returns a verdict.

Verdicts: ``ALLOW``; ``WARN`` (the call runs, the reason is kept on the result and the
event); ``REPAIR`` (the call runs with the guard's replacement arguments, which later
guards see); ``BLOCK`` (the call does not run, the model receives the reason as the
tool's result). A ``GuardChain`` runs guards in order and stops at the first block.

Guards read a ``GuardContext``: the session's tool history (this turn, counts, bindings,
grounded numbers) plus the calls of the same batch already let through, so three
identical calls in one assistant message count as three. ``chain`` runs them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from sessionware.core.tools.bindings import BindingTable
from sessionware.core.tools.ledger import ToolLedger
from sessionware.core.tools.models import ToolInvocation, ToolScope, ToolStatus
from sessionware.core.tools.records import ToolRecord

__all__ = [
    "Enforcement",
    "Guard",
    "GuardContext",
    "GuardDecision",
    "GuardVerdict",
]


class GuardVerdict(StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    BLOCK = "block"
    REPAIR = "repair"


class Enforcement(StrEnum):
    """What a guard does about what it detects."""

    OFF = "off"
    WARN = "warn"
    BLOCK = "block"


class GuardDecision(BaseModel):
    """One guard's verdict on one call, with the reason (and the arguments, for a repair)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: GuardVerdict
    guard: str
    reason: str = ""
    arguments: dict[str, Any] | None = None

    @classmethod
    def allow(cls, guard: str) -> GuardDecision:
        return cls(verdict=GuardVerdict.ALLOW, guard=guard)

    @classmethod
    def warn(cls, guard: str, reason: str) -> GuardDecision:
        return cls(verdict=GuardVerdict.WARN, guard=guard, reason=reason)

    @classmethod
    def block(cls, guard: str, reason: str) -> GuardDecision:
        return cls(verdict=GuardVerdict.BLOCK, guard=guard, reason=reason)

    @classmethod
    def repair(cls, guard: str, reason: str, arguments: dict[str, Any]) -> GuardDecision:
        return cls(verdict=GuardVerdict.REPAIR, guard=guard, reason=reason, arguments=arguments)

    @classmethod
    def enforce(cls, guard: str, level: Enforcement, reason: str) -> GuardDecision:
        """``WARN`` or ``BLOCK`` with ``reason`` as ``level`` says; ``ALLOW`` when it is ``OFF``."""
        if level is Enforcement.BLOCK:
            return cls.block(guard, reason)
        if level is Enforcement.WARN:
            return cls.warn(guard, reason)
        return cls.allow(guard)


class GuardContext:
    """What a guard may read about the session, as of the call being checked."""

    def __init__(self, ledger: ToolLedger, pending: Sequence[ToolInvocation] = ()) -> None:
        self._ledger = ledger
        self.pending: tuple[ToolInvocation, ...] = tuple(pending)
        """Earlier calls of the same batch that guards let through (not yet run)."""

    @property
    def turn(self) -> int:
        return self._ledger.turn

    @property
    def bindings(self) -> BindingTable:
        return self._ledger.bindings

    def this_turn(self) -> list[ToolRecord]:
        """Calls that ran (or were answered from the cache) this turn, oldest first."""
        return [r for r in self._ledger.turn_records() if r.status is not ToolStatus.BLOCKED]

    def calls_used(self, *, scope: ToolScope = ToolScope.TURN, tool: str | None = None) -> int:
        """Calls made in ``scope`` (of ``tool``, or of every tool), counting the pending ones."""
        counts = self._ledger.turn_counts if scope is ToolScope.TURN else self._ledger.session_counts
        used = counts[tool] if tool is not None else sum(counts.values())
        return used + sum(1 for call in self.pending if tool is None or call.name == tool)

    def is_grounded(self, value: float) -> bool:
        """True when ``value`` appeared in a user message, the system prompt or a tool result."""
        return self._ledger.is_grounded(value)


@runtime_checkable
class Guard(Protocol):
    """A check run before each tool call. Guards must not raise; a guard that does is
    logged and treated as a warning, so a bug in a guard never stops the model's loop."""

    @property
    def name(self) -> str: ...

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision: ...
