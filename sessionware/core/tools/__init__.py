"""Tool execution with session logging, guards and procedural memory.

* ``ToolRegistry``: tools from plain or async functions, schemas from type hints,
  exported as OpenAI or Anthropic ``tools=[...]``.
* ``ToolRunner``: runs an assistant message's tool calls through the engine,
  chuk-tool-processor (concurrently, timed out, retried once for transient failures,
  optionally cached, in process or in worker processes, MCP tools included), guarded,
  logged in the session as ``TOOL_CALL`` events linked by the provider's call id;
  ``ToolRound`` renders the results for the next request. The engine is the ``tools``
  extra, imported on the first run.
* ``guards``: budget, runaway, ``$vN`` bindings, ungrounded numbers.
* ``procedural``: per-session memory of outcomes and fixes, as a hint block.

>>> from sessionware.core.tools import ToolRegistry, ToolRunner
"""

from __future__ import annotations

from sessionware.core.tools.bindings import Binding, BindingTable
from sessionware.core.tools.guards import (
    BindingGuard,
    BudgetGuard,
    Enforcement,
    Guard,
    GuardChain,
    GuardContext,
    GuardDecision,
    GuardOutcome,
    GuardVerdict,
    RunawayGuard,
    UngroundedGuard,
    default_guards,
)
from sessionware.core.tools.ledger import ToolLedger, ledger_for
from sessionware.core.tools.models import ToolFormat, ToolInvocation, ToolResult, ToolScope, ToolStatus
from sessionware.core.tools.parsing import AssistantTurn, parse_assistant_message, parse_text_calls
from sessionware.core.tools.policies import NO_RETRY, CachePolicy, RetryPolicy, ToolSchedule
from sessionware.core.tools.procedural import (
    ArgumentDelta,
    ProceduralMemory,
    ToolLogEntry,
    ToolOutcome,
    ToolPattern,
)
from sessionware.core.tools.records import ToolRecord
from sessionware.core.tools.registry import Tool, ToolRegistry
from sessionware.core.tools.runner import ToolRound, ToolRunner

__all__ = [
    "ArgumentDelta",
    "AssistantTurn",
    "Binding",
    "BindingGuard",
    "BindingTable",
    "BudgetGuard",
    "CachePolicy",
    "Enforcement",
    "Guard",
    "GuardChain",
    "GuardContext",
    "GuardDecision",
    "GuardOutcome",
    "GuardVerdict",
    "NO_RETRY",
    "ProceduralMemory",
    "RetryPolicy",
    "RunawayGuard",
    "Tool",
    "ToolFormat",
    "ToolInvocation",
    "ToolLedger",
    "ToolLogEntry",
    "ToolOutcome",
    "ToolPattern",
    "ToolRecord",
    "ToolRegistry",
    "ToolResult",
    "ToolRound",
    "ToolRunner",
    "ToolSchedule",
    "ToolScope",
    "ToolStatus",
    "UngroundedGuard",
    "default_guards",
    "ledger_for",
    "parse_assistant_message",
    "parse_text_calls",
]
