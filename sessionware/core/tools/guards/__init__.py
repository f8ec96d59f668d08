"""Guards: checks run before each tool call (budget, runaway loops, value references,
ungrounded numbers), each returning a typed verdict. See ``base`` for the contract,
``chain`` for how they run, and ``engine`` for the engine's own guards beside them (and
which of the clashing names means what)."""

from __future__ import annotations

from sessionware.core.tools.guards.base import (
    Enforcement,
    Guard,
    GuardContext,
    GuardDecision,
    GuardVerdict,
)
from sessionware.core.tools.guards.budget import BudgetGuard
from sessionware.core.tools.guards.chain import GuardChain, GuardOutcome
from sessionware.core.tools.guards.defaults import default_guards
from sessionware.core.tools.guards.engine import EngineGuard
from sessionware.core.tools.guards.grounding import BindingGuard, UngroundedGuard
from sessionware.core.tools.guards.runaway import RunawayGuard

__all__ = [
    "BindingGuard",
    "BudgetGuard",
    "EngineGuard",
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
