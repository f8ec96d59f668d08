"""Tool results as the next request of each provider wants them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sessionware.core.tools.models import ToolResult

__all__ = ["anthropic_tool_result_blocks", "anthropic_tool_result_message", "openai_tool_messages"]


def openai_tool_messages(results: Iterable[ToolResult]) -> list[dict[str, Any]]:
    """One ``{"role": "tool", "tool_call_id", "content"}`` message per result, in order."""
    return [{"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in results]


def anthropic_tool_result_blocks(results: Iterable[ToolResult]) -> list[dict[str, Any]]:
    """One ``tool_result`` block per result; failures carry ``is_error: true``."""
    blocks: list[dict[str, Any]] = []
    for r in results:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content}
        if not r.ok:
            block["is_error"] = True
        blocks.append(block)
    return blocks


def anthropic_tool_result_message(results: Iterable[ToolResult]) -> dict[str, Any]:
    """The ``user`` message that answers an assistant's ``tool_use`` blocks."""
    return {"role": "user", "content": anthropic_tool_result_blocks(results)}
