"""``BudgetGuard``: caps on the number of tool calls, in total and per tool.

A cap of ``0`` or ``None`` means *unlimited*. (The seed's default per-tool cap of 0 was
meant that way, but was applied as a limit of zero and blocked every tool.) Calls are
counted per user turn by default, or over the whole session; blocked calls do not count.
"""

from __future__ import annotations

from collections.abc import Mapping

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.tools.guards.base import GuardContext, GuardDecision
from sessionware.core.tools.models import ToolInvocation, ToolScope

__all__ = ["BudgetGuard"]


def _cap(value: int | None, what: str) -> int | None:
    if value is None or value == 0:
        return None
    if value < 0:
        raise InvalidSessionOperation(
            "BudgetGuard", f"{what} must be >= 0 (0 or None: unlimited), got {value}"
        )
    return value


class BudgetGuard:
    """Block calls beyond ``max_calls`` (all tools) or a tool's ``per_tool`` cap in ``scope``.

    ``per_tool`` is one cap for every tool, or a mapping of tool name to cap (tools not
    in it are unlimited). The last call a budget allows gets a warning.

    >>> from sessionware.core.tools.ledger import ToolLedger
    >>> from sessionware.core.tools.models import ToolInvocation
    >>> guard = BudgetGuard(max_calls=2, per_tool=0)
    >>> earlier = [ToolInvocation(id="a", name="f"), ToolInvocation(id="b", name="f")]
    >>> context = GuardContext(ToolLedger(), earlier)
    >>> guard.check(ToolInvocation(id="c", name="f"), context).verdict.value
    'block'
    """

    name = "budget"

    def __init__(
        self,
        *,
        max_calls: int | None = 50,
        per_tool: int | Mapping[str, int | None] | None = None,
        scope: ToolScope = ToolScope.TURN,
    ) -> None:
        self.max_calls = _cap(max_calls, "max_calls")
        if isinstance(per_tool, Mapping):
            self.per_tool: int | dict[str, int | None] | None = {
                name: _cap(cap, f"per_tool[{name!r}]") for name, cap in per_tool.items()
            }
        else:
            self.per_tool = _cap(per_tool, "per_tool")
        self.scope = ToolScope(scope)

    def limit_for(self, tool: str) -> int | None:
        """The cap of ``tool`` (None: unlimited)."""
        if isinstance(self.per_tool, dict):
            return self.per_tool.get(tool)
        return self.per_tool

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        where = "this turn" if self.scope is ToolScope.TURN else "in this session"
        if self.max_calls is not None:
            used = context.calls_used(scope=self.scope)
            if used >= self.max_calls:
                return GuardDecision.block(
                    self.name,
                    f"Tool budget exhausted: {used} of {self.max_calls} calls used {where}. "
                    "Answer with the results you already have.",
                )
        limit = self.limit_for(call.name)
        if limit is not None:
            used_tool = context.calls_used(scope=self.scope, tool=call.name)
            if used_tool >= limit:
                return GuardDecision.block(
                    self.name,
                    f"`{call.name}` reached its limit of {limit} calls {where}. "
                    "Use its earlier results or another tool.",
                )
            if used_tool == limit - 1:
                return GuardDecision.warn(
                    self.name, f"last call of `{call.name}` allowed {where} ({limit} max)"
                )
        if self.max_calls is not None and context.calls_used(scope=self.scope) == self.max_calls - 1:
            return GuardDecision.warn(self.name, f"last tool call allowed {where} ({self.max_calls} max)")
        return GuardDecision.allow(self.name)
