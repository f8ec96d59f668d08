"""``GuardChain``: guards run in order before each call, and after it for the engine's
guards that check outputs.

A chain holds sessionware ``Guard`` objects and the engine's guards (wrapped in
``EngineGuard`` as they are added; an engine ``GuardChain`` of ``(name, guard)`` pairs
is taken apart). A repair feeds the next guard; the first block ends the chain. A guard
that raises is logged and read as a warning, so a bug in a guard never stops the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from sessionware.core.tools.guards.base import Guard, GuardContext, GuardDecision, GuardVerdict
from sessionware.core.tools.guards.engine import EngineGuard, is_engine_guard
from sessionware.core.tools.models import ToolInvocation

__all__ = ["GuardChain", "GuardOutcome"]

logger = logging.getLogger(__name__)


class GuardOutcome(BaseModel):
    """The chain's verdict on one call: the call to run (maybe repaired) and every decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    call: ToolInvocation
    decisions: tuple[GuardDecision, ...] = ()

    @property
    def blocked_by(self) -> GuardDecision | None:
        return next((d for d in self.decisions if d.verdict is GuardVerdict.BLOCK), None)

    @property
    def allowed(self) -> bool:
        return self.blocked_by is None

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(f"{d.guard}: {d.reason}" for d in self.decisions if d.verdict is GuardVerdict.WARN)


class GuardChain:
    """Guards run in order; a repair feeds the next guard; the first block ends the chain.

    >>> from sessionware.core.tools.ledger import ToolLedger
    >>> GuardChain().check(ToolInvocation(id="c1", name="add"), GuardContext(ToolLedger())).allowed
    True
    """

    def __init__(self, guards: Iterable[Guard | Any] = ()) -> None:
        self._guards: list[Guard] = []
        for guard in guards:
            self.add(guard)

    def add(self, guard: Guard | Any, name: str | None = None) -> GuardChain:
        """Append ``guard``: a sessionware ``Guard``, an engine guard, or an engine chain."""
        if isinstance(guard, Guard):
            self._guards.append(guard)
        elif is_engine_guard(guard):
            self._guards.append(EngineGuard(guard, name))
        elif hasattr(guard, "check_all") and isinstance(guard, Iterable):  # the engine's GuardChain
            for member_name, member in guard:
                self._guards.append(EngineGuard(member, member_name))
        else:
            raise TypeError(f"not a guard: {guard!r}")
        return self

    def __iter__(self) -> Iterator[Guard]:
        return iter(list(self._guards))

    def __len__(self) -> int:
        return len(self._guards)

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardOutcome:
        decisions: list[GuardDecision] = []
        for guard in self._guards:
            try:
                decision = guard.check(call, context)
            except Exception as exc:
                decision = _failed(guard.name, f"a call to {call.name}", exc)
            if _kept(decision, decisions):
                break
            if decision.verdict is GuardVerdict.REPAIR and decision.arguments is not None:
                call = call.with_arguments(decision.arguments)
        return GuardOutcome(call=call, decisions=tuple(decisions))

    def check_output(self, call: ToolInvocation, value: Any) -> tuple[Any, tuple[GuardDecision, ...]]:
        """The engine guards' verdicts on a successful call's result, and the result to keep.

        A repair replaces the result (a truncation, a redaction); a block stops the chain.
        """
        decisions: list[GuardDecision] = []
        for guard in self._guards:
            if not isinstance(guard, EngineGuard):
                continue
            try:
                decision, value = guard.check_output(call, value)
            except Exception as exc:
                decision = _failed(guard.name, f"the output of {call.name}", exc)
            if _kept(decision, decisions):
                break
        return value, tuple(decisions)


def _failed(guard: str, what: str, exc: Exception) -> GuardDecision:
    """A guard that raised: logged, and read as a warning."""
    logger.exception("guard %r raised on %s; treated as a warning", guard, what)
    return GuardDecision.warn(guard, f"the guard failed ({type(exc).__name__}: {exc})")


def _kept(decision: GuardDecision, decisions: list[GuardDecision]) -> bool:
    """Keep a decision that is not an allow; True when it ends the chain (a block)."""
    if decision.verdict is GuardVerdict.ALLOW:
        return False
    decisions.append(decision)
    return decision.verdict is GuardVerdict.BLOCK
