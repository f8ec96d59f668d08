"""The guard chain a ``ToolRunner`` uses unless told otherwise."""

from __future__ import annotations

from sessionware.core.tools.guards.budget import BudgetGuard
from sessionware.core.tools.guards.chain import GuardChain
from sessionware.core.tools.guards.grounding import BindingGuard, UngroundedGuard
from sessionware.core.tools.guards.runaway import RunawayGuard

__all__ = ["default_guards"]


def default_guards() -> GuardChain:
    """A fresh chain with defaults that let ordinary use through.

    In order: ``$vN`` references resolved (typed), at most 50 calls per user turn with
    no per-tool cap, identical calls blocked from the fourth, a tool blocked after four
    failures in a row, a warning after six calls without a new result, and a warning
    for invented numbers. Each guard is configurable; build a ``GuardChain`` of your own
    to change them, or pass ``guards=()`` to a runner for none.

    >>> [g.name for g in default_guards()]
    ['bindings', 'budget', 'runaway', 'ungrounded']
    """
    return GuardChain([BindingGuard(), BudgetGuard(), RunawayGuard(), UngroundedGuard()])
