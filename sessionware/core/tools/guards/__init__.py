"""Guards: checks run before each tool call (budget, runaway loops, value references,
ungrounded numbers), each returning a typed verdict. See ``base`` for the contract."""

from __future__ import annotations

from sessionware.core.tools.guards.base import (
    Enforcement,
    Guard,
    GuardChain,
    GuardContext,
    GuardDecision,
    GuardOutcome,
    GuardVerdict,
)
from sessionware.core.tools.guards.budget import BudgetGuard
from sessionware.core.tools.guards.defaults import default_guards
from sessionware.core.tools.guards.grounding import BindingGuard, UngroundedGuard
from sessionware.core.tools.guards.runaway import RunawayGuard

__all__ = [
    "BindingGuard",
    "BudgetGuard",
    "Enforcement",
    "Guard",
    "GuardChain",
    "GuardContext",
    "GuardDecision",
    "GuardOutcome",
    "GuardVerdict",
    "RunawayGuard",
    "UngroundedGuard",
    "default_guards",
]
