"""The tool execution engine, chuk-tool-processor: loaded on first use, and read back.

sessionware executes tools through ``chuk_tool_processor.ToolProcessor`` (its strategies,
retries, cache, rate limits, circuit breaker, bulkheads, MCP sources). Importing it costs
about a second, so nothing imports it before a tool runs or a processor is wrapped; it
is the ``tools`` extra (``pip install 'sessionware[tools]'``).

``load_engine()`` imports it and undoes what its import does to the application's
process, which is not the engine's to decide:

* it adds a JSON-formatting stderr handler to the ``chuk_tool_processor`` logger at
  level INFO (the "noisy JSON logs"): removed, and the level reset, so its records follow
  the application's logging configuration like any library's;
* it adds a filter to the root logger and ``ignore`` filters for warnings such as
  "coroutine ... was never awaited" process-wide: both undone when sessionware does the
  import (an application that imported the engine itself made that choice);
* its in-process strategy logs every exception a tool raises at ERROR with a traceback,
  although the failure is an ordinary outcome returned to the model: those records are
  demoted to DEBUG (``tame_logging``).

``outcome()`` reads an engine ``ToolResult`` back as sessionware's status, value and
typed error (see its docstring for what the engine leaves out).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import sys
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic_core import to_jsonable_python

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.models import ErrorInfo
from sessionware.core.tools.models import ToolStatus

__all__ = [
    "ENGINE_PACKAGE",
    "Outcome",
    "failure_text",
    "load_engine",
    "outcome",
    "read_failure",
    "tame_logging",
]

ENGINE_PACKAGE = "chuk_tool_processor"

# Messages of the engine's loggers that report a tool's own failure, an outcome the
# caller receives as a result: kept, but at DEBUG.
_FAILURE_RECORDS = {
    "chuk_tool_processor.execution.inprocess_strategy": (
        "Error executing",
        "Unexpected error while executing",
    ),
    "chuk_tool_processor.execution.subprocess_strategy": ("Error in task",),
    "chuk_tool_processor.mcp.mcp_tool": ("Remote MCP error", "MCP tool '", "Tool '"),
    "chuk_tool_processor.tool_call": ("Tool ",),
}


class _DemoteToolFailures(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and str(record.msg).startswith(self.prefixes):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # A handler at DEBUG still shows the failure; its traceback belongs to the result.
            record.exc_info = record.exc_text = None
        return True


def tame_logging() -> None:
    """Route the engine's logging through the application's configuration (idempotent)."""
    root = logging.getLogger(ENGINE_PACKAGE)
    formatter_type = getattr(
        sys.modules.get(f"{ENGINE_PACKAGE}.logging.formatter"), "StructuredFormatter", None
    )
    for handler in list(root.handlers):
        if formatter_type is not None and isinstance(handler.formatter, formatter_type):
            root.removeHandler(handler)
    if root.level == logging.INFO:
        root.setLevel(logging.NOTSET)
    for name, prefixes in _FAILURE_RECORDS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteToolFailures) for f in logger.filters):
            logger.addFilter(_DemoteToolFailures(prefixes))


_engine: ModuleType | None = None


def load_engine() -> ModuleType:
    """The ``chuk_tool_processor`` package, imported on first call (see the module docstring).

    Raises ``InvalidSessionOperation`` naming the extra to install when it is missing.
    """
    global _engine
    if _engine is not None:
        return _engine
    root = logging.getLogger()
    saved_root_filters = list(root.filters)
    try:
        # catch_warnings restores the process's warning filters as they were before.
        with warnings.catch_warnings():
            module = importlib.import_module(ENGINE_PACKAGE)
    except ImportError as exc:
        raise InvalidSessionOperation(
            "tools",
            f"the tool engine is missing ({exc}): pip install 'sessionware[tools]'",
        ) from exc
    finally:
        root.filters[:] = saved_root_filters
    tame_logging()
    _engine = module
    return module


# -- reading results back ---------------------------------------------------------------

_MARK = "\x1f"
"""Separates the exception type from its message in failures of sessionware's tools: the
engine keeps only a string, and a unit separator never occurs in a message."""

# What the engine's layers put in front of a failure's text.
_PREFIXES = re.compile(
    r"^(?:Max retries reached \(\d+\): |Tool execution failed: |Unexpected error: |Setup error: )+"
)
_ENGINE_TIMEOUT = re.compile(r"^(?:Timeout after |Tool execution timed out after |Streaming timeout after )")


def failure_text(error_type: str, message: str) -> str:
    """The error string a tool of sessionware's registry raises, keeping its type."""
    return f"{error_type}{_MARK}{message}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One engine result as sessionware records it."""

    status: ToolStatus
    value: Any = None
    error: ErrorInfo | None = None
    attempts: int = 1
    cached: bool = False
    latency_ms: float = 0.0


def _mcp_content(value: Any) -> tuple[Any, ErrorInfo | None]:
    """An MCP ``tools/call`` result (``content`` parts, ``isError``) read as its value: the
    text of its text parts, decoded when it is JSON (other parts stay as they are)."""
    parts = value.get("content")
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    if len(texts) != len(parts):
        return parts, None
    text = "".join(texts)
    if value.get("isError"):
        return None, ErrorInfo(type="MCPToolError", message=text)
    try:
        return json.loads(text), None
    except ValueError:
        return text, None


def _mcp_failure(value: Any) -> ErrorInfo | None:
    """MCP tools answer transport failures with an envelope instead of raising."""
    if (
        isinstance(value, dict)
        and value.get("available") is False
        and isinstance(value.get("error"), str)
        and "reason" in value
    ):
        kind = "TimeoutError" if value["reason"] == "timeout" else "MCPToolError"
        return ErrorInfo(type=kind, message=value["error"])
    return None


def read_failure(text: str, category: str | None = None) -> tuple[ToolStatus, ErrorInfo]:
    """Status and typed error of an engine failure text (``category``: the engine's own)."""
    text = _PREFIXES.sub("", text)
    if _MARK in text:
        kind, _, message = text.partition(_MARK)
        status = ToolStatus.TIMEOUT if kind == "ToolTimeout" else ToolStatus.ERROR
        if kind == "InvalidArguments":
            status = ToolStatus.INVALID_ARGUMENTS
        return status, ErrorInfo(type="TimeoutError" if kind == "ToolTimeout" else kind, message=message)
    if category == "timeout" or _ENGINE_TIMEOUT.match(text):
        return ToolStatus.TIMEOUT, ErrorInfo(type="TimeoutError", message=text)
    if category == "not_found":
        return ToolStatus.UNKNOWN_TOOL, ErrorInfo(type="UnknownTool", message=text)
    kinds = {"rate_limit": "RateLimited", "circuit_open": "CircuitOpen", "bulkhead_full": "BulkheadFull"}
    return ToolStatus.ERROR, ErrorInfo(type=kinds.get(category or "", "ToolError"), message=text)


def outcome(result: Any) -> Outcome:
    """Status, JSON-compatible value and typed error of an engine ``ToolResult``.

    The engine reports a failure as text only: a failure of one of sessionware's tools
    carries its exception type in that text (``failure_text``) and is read back typed;
    any other keeps the engine's category (timeout, rate limit, open circuit...). An MCP
    tool's result is read as its text content (decoded when it is JSON); its ``isError``
    and the transport failures MCP tools return as values are failures too. ``attempts`` is 0 for an
    answer from the cache, which ran nothing.
    """
    started, ended = result.start_time, result.end_time
    latency = (ended - started).total_seconds() * 1000 if started and ended else 0.0
    cached = bool(result.cached)
    attempts = 0 if cached else max(int(result.attempts or 1), 1)
    if result.error is not None:
        info = result.error_info
        category = str(info.category.value) if info is not None else None
        status, error = read_failure(str(result.error), category)
        return Outcome(status, None, error, attempts, cached, latency)
    value = to_jsonable_python(result.result, serialize_unknown=True)
    if isinstance(value, dict) and isinstance(value.get("content"), list) and "isError" in value:
        value, failed = _mcp_content(value)
        if failed is not None:
            return Outcome(ToolStatus.ERROR, None, failed, attempts, cached, latency)
    mcp = _mcp_failure(value)
    if mcp is not None:
        status = ToolStatus.TIMEOUT if mcp.type == "TimeoutError" else ToolStatus.ERROR
        return Outcome(status, None, mcp, attempts, cached, latency)
    return Outcome(ToolStatus.SUCCESS, value, None, attempts, cached, latency)
