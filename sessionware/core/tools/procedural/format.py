"""The ``<procedural_memory>`` hint block: a compact account of past tool calls for the model.

Exact format (two-space indents; one ``<tool>`` element per tool with history, in the
order asked for; nothing at all when no asked tool has history)::

    <procedural_memory>
    <tool name="convert" calls="3" success_rate="67%" avg_ms="4">
      [✗] convert(value=3, unit="kelvin") -> ValueError: unknown unit 'kelvin'  (fixed later)
      [✓] convert(value=3, unit="K") -> 276.15  (fixed: change unit "kelvin" -> "K")
      error ValueError x1: unknown unit 'kelvin' -> fix: change unit "kelvin" -> "K"
    </tool>
    </procedural_memory>

* the ``<tool>`` line: ``calls`` executed calls, ``success_rate`` rounded to a whole
  percent, ``avg_ms`` the mean latency rounded to a whole millisecond (left out when
  no call was timed);
* then up to ``max_recent`` recent calls, oldest first: ``[✓]`` success or ``[✗]``
  failure, the call with compact arguments (values over 24 characters cut with ``…``,
  at most four then ``+N``), ``->`` the result summarised on one line (80 characters)
  or ``ErrorType: message``; a failure a later call fixed ends with ``(fixed later)``,
  the success that fixed it with ``(fixed: <delta>)``;
* then up to ``max_errors`` error kinds, most frequent first:
  ``error <Type> x<count>: <last message> -> fix: <delta>`` or ``-> no fix known``.

A delta reads ``add k=v; remove k; change k <old> -> <new>``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from sessionware.core.tools.procedural.models import ToolLogEntry, ToolPattern
from sessionware.core.tools.text import truncate

__all__ = ["HintSource", "format_hints"]


class HintSource(Protocol):
    """What the hint block is written from (``ProceduralMemory`` is one)."""

    def pattern(self, tool: str) -> ToolPattern | None: ...

    def recent(self, tool: str, limit: int = 5) -> list[ToolLogEntry]: ...

    def tools(self) -> list[str]: ...


def _tool_block(memory: HintSource, tool: str, max_recent: int, max_errors: int) -> list[str]:
    pattern = memory.pattern(tool)
    if pattern is None or pattern.calls == 0:
        return []
    header = (
        f'<tool name="{tool}" calls="{pattern.calls}" success_rate="{round(pattern.success_rate * 100)}%"'
    )
    if pattern.avg_latency_ms is not None:
        header += f' avg_ms="{round(pattern.avg_latency_ms)}"'
    lines = [header + ">"]
    lines.extend(f"  {entry.line()}" for entry in memory.recent(tool, max_recent))
    for error in pattern.top_errors(max_errors):
        fix = f"fix: {error.fix.describe()}" if error.fix is not None else "no fix known"
        lines.append(
            f"  error {error.error_type} x{error.count}: {truncate(error.last_message, 80)} -> {fix}"
        )
    lines.append("</tool>")
    return lines


def format_hints(
    memory: HintSource,
    tool_names: Collection[str] | None = None,
    *,
    max_recent: int = 3,
    max_errors: int = 3,
) -> str:
    """The hint block for ``tool_names`` (default: every tool with history, most recent first)."""
    names = memory.tools() if tool_names is None else list(dict.fromkeys(tool_names))
    body: list[str] = []
    for tool in names:
        body.extend(_tool_block(memory, tool, max_recent, max_errors))
    if not body:
        return ""
    return "\n".join(["<procedural_memory>", *body, "</procedural_memory>"])
