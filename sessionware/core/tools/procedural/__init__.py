"""Procedural memory: what a session's tool calls taught (outcomes, fixes, patterns), as hints.

See ``memory.ProceduralMemory`` and, for the hint block's exact format, ``format``.
"""

from __future__ import annotations

from sessionware.core.tools.procedural.format import format_hints
from sessionware.core.tools.procedural.memory import ProceduralMemory
from sessionware.core.tools.procedural.models import (
    ArgumentDelta,
    ErrorPattern,
    FixRecord,
    ProceduralStats,
    ToolLogEntry,
    ToolOutcome,
    ToolPattern,
    ValueChange,
)

__all__ = [
    "ArgumentDelta",
    "ErrorPattern",
    "FixRecord",
    "ProceduralMemory",
    "ProceduralStats",
    "ToolLogEntry",
    "ToolOutcome",
    "ToolPattern",
    "ValueChange",
    "format_hints",
]
