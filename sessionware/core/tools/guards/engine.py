"""The engine's guards (``chuk_tool_processor.guards``) in a sessionware ``GuardChain``.

The engine ships guards sessionware does not have: per-tool caps, preconditions,
unresolved references, schema strictness, output size, sensitive data, network policy,
side effects, timeout budgets... ``EngineGuard`` runs one of them as a member of a chain
(a chain wraps them itself: ``GuardChain([BindingGuard(), SensitiveDataGuard()])``), with
its verdict read as sessionware's (``allow``, ``warn``, ``repair`` with its arguments,
``block``). Guards with a ``check_output`` also look at each result after the call ran:
a block replaces the result with the guard's reason, a repair with its replacement
(the engine's ``OutputSizeGuard`` truncates this way).

Nothing here imports the engine: its guards are recognised by their shape.

Where names clash, ``sessionware``'s own names mean sessionware's guards; the engine's
keep theirs under ``chuk_tool_processor.guards``:

=================  ==============================================  ===========================================
name               sessionware (``sessionware.core.tools``)        the engine (``chuk_tool_processor.guards``)
=================  ==============================================  ===========================================
``BudgetGuard``    calls per user turn (or session), per tool,     discovery / execution budgets by tool-name
                   counted from the session's own log              pattern, counted in the guard object
``RunawayGuard``   identical calls, failure loops, no progress     degenerate and saturated numeric results
``GuardChain``     ``Guard`` objects; engine guards wrapped        ``(name, guard)`` pairs; ``check_all``
``GuardVerdict``   the same four values                            the same four values
``Guard``          ``check(call, context)`` Protocol               ``check(tool_name, arguments)`` Protocol
=================  ==============================================  ===========================================

An engine guard keeps its own state in the guard object, for every session that goes
through it; sessionware's guards read each session's log, so their counts are per
session and survive a reload.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from sessionware.core.tools.guards.base import GuardContext, GuardDecision, GuardVerdict
from sessionware.core.tools.models import ToolInvocation

__all__ = ["EngineGuard", "EngineGuardLike", "is_engine_guard"]


@runtime_checkable
class EngineGuardLike(Protocol):
    """What the engine's guards look like (``BaseGuard`` and its ``Guard`` Protocol)."""

    def check(self, tool_name: str, arguments: dict[str, Any]) -> Any: ...


def is_engine_guard(guard: object) -> bool:
    """True for a guard with the engine's ``check(tool_name, arguments)`` shape."""
    return isinstance(guard, EngineGuardLike) and not hasattr(guard, "name")


def _verdict(result: Any) -> GuardVerdict:
    return GuardVerdict(str(getattr(result, "verdict", "allow")))


class EngineGuard:
    """One engine guard as a member of a sessionware chain.

    >>> class NoDelete:  # any object with the engine's guard shape
    ...     def check(self, tool_name, arguments):
    ...         from types import SimpleNamespace
    ...         verdict = "block" if tool_name == "delete" else "allow"
    ...         return SimpleNamespace(verdict=verdict, reason="deletes are off", repaired_args=None)
    >>> from sessionware.core.tools.ledger import ToolLedger
    >>> call = ToolInvocation(id="c1", name="delete")
    >>> EngineGuard(NoDelete()).check(call, GuardContext(ToolLedger())).reason
    'deletes are off'
    """

    def __init__(self, guard: EngineGuardLike, name: str | None = None) -> None:
        self.guard = guard
        self.name = name or type(guard).__name__

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        result = self.guard.check(call.name, dict(call.arguments))
        verdict = _verdict(result)
        reason = str(getattr(result, "reason", "") or "")
        if verdict is GuardVerdict.REPAIR:
            repaired = getattr(result, "repaired_args", None)
            if isinstance(repaired, dict):
                return GuardDecision.repair(self.name, reason, repaired)
            return GuardDecision.warn(self.name, reason)
        if verdict is GuardVerdict.ALLOW:
            return GuardDecision.allow(self.name)
        return GuardDecision(verdict=verdict, guard=self.name, reason=reason)

    def check_output(self, call: ToolInvocation, value: Any) -> tuple[GuardDecision, Any]:
        """The guard's verdict on a result, and the result to keep (a repair's replacement)."""
        check_output = getattr(self.guard, "check_output", None)
        if check_output is None:
            return GuardDecision.allow(self.name), value
        result = check_output(call.name, dict(call.arguments), value)
        verdict = _verdict(result)
        reason = str(getattr(result, "reason", "") or "")
        if verdict is GuardVerdict.REPAIR:
            fallback = getattr(result, "fallback_response", None)
            if fallback is None:
                return GuardDecision.warn(self.name, reason), value
            try:
                replaced = json.loads(fallback)
            except (TypeError, ValueError):
                replaced = fallback
            return GuardDecision(verdict=verdict, guard=self.name, reason=reason), replaced
        if verdict is GuardVerdict.ALLOW:
            return GuardDecision.allow(self.name), value
        return GuardDecision(verdict=verdict, guard=self.name, reason=reason), value
