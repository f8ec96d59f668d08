"""Guards about where argument values come from: ``$vN`` references and ungrounded numbers.

``BindingGuard`` replaces ``$vN`` references by the bound values (a repair that keeps
types) and blocks calls that reference a value that does not exist.

``UngroundedGuard`` flags numeric arguments that appear nowhere earlier in the
conversation (user messages, system prompt, tool results): typically a number the
model invented or miscopied instead of passing an earlier result on. Small integers
(counts, limits, indexes; ``|n| <= ignore_integers_up_to``) are not checked. It warns
by default; ``mode=Enforcement.BLOCK`` refuses such calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sessionware.core.tools.guards.base import Enforcement, GuardContext, GuardDecision
from sessionware.core.tools.models import ToolInvocation

__all__ = ["BindingGuard", "UngroundedGuard"]

_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


class BindingGuard:
    """Resolve ``$vN`` references in arguments; block references to unknown values."""

    name = "bindings"

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        resolution = context.bindings.resolve(call.arguments)
        if resolution.missing:
            available = ", ".join(f"${b.id}" for b in context.bindings) or "none yet"
            missing = ", ".join(f"${ref}" for ref in resolution.missing)
            return GuardDecision.block(
                self.name,
                f"Unknown value reference {missing} in the arguments of `{call.name}`. "
                f"Available values: {available}.",
            )
        if resolution.resolved:
            refs = ", ".join(f"${ref}" for ref in resolution.resolved)
            return GuardDecision.repair(self.name, f"resolved {refs}", resolution.arguments)
        return GuardDecision.allow(self.name)


def _numbers(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, float, bool]]:
    """``(path, number, is_integer)`` for numeric leaves and numeric strings."""
    if depth > 20 or isinstance(value, bool):
        return
    if isinstance(value, int):
        yield path, float(value), True
    elif isinstance(value, float):
        if math.isfinite(value):
            yield path, value, value.is_integer()
    elif isinstance(value, str):
        if _NUMERIC.fullmatch(value.strip()):
            number = float(value)
            if math.isfinite(number):
                yield path, number, number.is_integer()
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]", depth + 1)


class UngroundedGuard:
    """Flag numeric arguments that nothing earlier in the conversation contains."""

    name = "ungrounded"

    def __init__(
        self,
        *,
        mode: Enforcement = Enforcement.WARN,
        ignore_integers_up_to: int = 10,
        tools: Collection[str] | None = None,
        exempt: Collection[str] = (),
    ) -> None:
        self.mode = Enforcement(mode)
        self.ignore_integers_up_to = ignore_integers_up_to
        self.tools = frozenset(tools) if tools is not None else None
        self.exempt = frozenset(exempt)

    def _applies(self, tool: str) -> bool:
        if self.mode is Enforcement.OFF or tool in self.exempt:
            return False
        return self.tools is None or tool in self.tools

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        if not self._applies(call.name):
            return GuardDecision.allow(self.name)
        ungrounded = [
            (path, number)
            for path, number, integral in _numbers(call.arguments, "")
            if not (integral and abs(number) <= self.ignore_integers_up_to)
            and not context.is_grounded(number)
        ]
        if not ungrounded:
            return GuardDecision.allow(self.name)
        shown = ", ".join(f"{path}={number:g}" for path, number in ungrounded[:4])
        return GuardDecision.enforce(
            self.name,
            self.mode,
            f"`{call.name}` got numbers that appear nowhere earlier in the conversation ({shown}). "
            "Pass values from the user or from earlier tool results; a result can be referenced as $vN.",
        )
