"""What the model reads: ``VM:RULES`` per mode, ``VM:MANIFEST_JSON``, ``VM:CONTEXT``,
and the two VM tool schemas.

The rules never spell out the section tags, so each tag occurs exactly once in the
memory block and a parser can split on them. The fault limit in the rules is the same
number the handler enforces.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.memory.enums import Modality, VMMode, VMTool

__all__ = [
    "AvailablePage",
    "ManifestPolicies",
    "VMManifest",
    "WorkingSetEntry",
    "memory_block",
    "rules_text",
    "vm_tools",
]

_STRICT = (
    "Memory rules (strict). Older turns of this conversation were moved out of the prompt. "
    "What you know from them is only the memory context below and the results of your memory tools. "
    "If the user refers to something not shown, first call search_pages with words from the request, "
    "or page_fault with a page id from the manifest; at most {n} memory calls per turn. "
    "Never invent remembered facts: if nothing matches, say you do not have it. "
    "Lines are speaker (U user, A assistant, T tool, S summary, C claim, P pinned), page id, turn. "
    "Prefer the later turn when two lines disagree. Do not mention these rules."
)
_RELAXED = (
    "Memory rules. Older turns were moved out of the prompt; the memory context below keeps "
    "summaries and pinned notes. To recall details, call search_pages(query) or page_fault(page_id); "
    "at most {n} memory calls per turn. "
    "Lines are speaker (U user, A assistant, T tool, S summary, C claim, P pinned), page id, turn; "
    "prefer the later turn when two lines disagree. Answer naturally."
)
_PASSIVE = "Memory of earlier turns (summaries and pinned notes), for reference; later turns win."
# Small budgets: the same rules in a third of the tokens (the speaker legend is left out).
_STRICT_COMPACT = (
    "Memory (strict): older turns are known only from the memory below and from "
    "search_pages(query) or page_fault(page_id), at most {n} calls per turn. "
    "Never invent remembered facts; later turns win."
)
_RELAXED_COMPACT = (
    "Memory: older turns are summarised below. Recall details with search_pages(query) or "
    "page_fault(page_id), at most {n} calls per turn; later turns win."
)


def rules_text(mode: VMMode, max_faults_per_turn: int, *, tools: bool, compact: bool = False) -> str:
    """The ``VM:RULES`` text; ``compact`` is the short form used under small budgets."""
    if mode is VMMode.PASSIVE or not tools:
        return _PASSIVE
    if compact:
        template = _STRICT_COMPACT if mode is VMMode.STRICT else _RELAXED_COMPACT
    else:
        template = _STRICT if mode is VMMode.STRICT else _RELAXED
    return template.format(n=max_faults_per_turn)


class WorkingSetEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    page_id: str
    modality: Modality = Modality.TEXT
    level: int
    tokens_est: int
    importance: float


class AvailablePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    page_id: str
    modality: Modality = Modality.TEXT
    tier: str
    levels: list[int] = Field(default_factory=lambda: [0, 2, 3])
    hint: str = ""


class ManifestPolicies(BaseModel):
    model_config = ConfigDict(frozen=True)

    faults_allowed: bool
    max_faults_per_turn: int
    upgrade_budget_tokens: int
    prefer_levels: list[int] = Field(default_factory=lambda: [2, 0])


class VMManifest(BaseModel):
    """The ``VM:MANIFEST_JSON`` document (the seed's key order)."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    working_set: list[WorkingSetEntry]
    available_pages: list[AvailablePage]
    policies: ManifestPolicies

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def memory_block(
    rules: str, manifest: VMManifest | None, context_lines: list[str], procedural: str = ""
) -> str:
    """The memory block, each section between its unique tags on their own lines
    (``procedural``: a ``<procedural_memory>`` section, when there is one)."""
    parts = [f"<VM:RULES>\n{rules}\n</VM:RULES>"]
    if manifest is not None:
        parts.append(f"<VM:MANIFEST_JSON>\n{manifest.to_json()}\n</VM:MANIFEST_JSON>")
    parts.append("<VM:CONTEXT>\n" + "\n".join(context_lines) + "\n</VM:CONTEXT>")
    if procedural:
        parts.append(procedural)
    return "\n".join(parts)


_PAGE_FAULT: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": VMTool.PAGE_FAULT.value,
        "description": "Load a memory page by id (from the manifest or search results).",
        "parameters": {
            "type": "object",
            "properties": {
                "page_id": {"type": "string"},
                "target_level": {
                    "type": "integer",
                    "description": "0 full (with neighbouring turns), 2 summary, 3 reference",
                    "enum": [0, 2, 3],
                    "default": 0,
                },
            },
            "required": ["page_id"],
        },
    },
}
_SEARCH_PAGES: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": VMTool.SEARCH_PAGES.value,
        "description": "Keyword search over earlier turns and tool outputs moved out of the prompt.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "modality": {"type": "string", "enum": [m.value for m in Modality]},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            },
            "required": ["query"],
        },
    },
}


_PAGE_FAULT_COMPACT: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": VMTool.PAGE_FAULT.value,
        "description": "Load a memory page by id.",
        "parameters": {
            "type": "object",
            "properties": {
                "page_id": {"type": "string"},
                "target_level": {
                    "type": "integer",
                    "description": "0 full, 2 summary, 3 reference",
                },
            },
            "required": ["page_id"],
        },
    },
}
_SEARCH_PAGES_COMPACT: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": VMTool.SEARCH_PAGES.value,
        "description": "Keyword search over earlier turns moved out of the prompt.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}


def vm_tools(*, anthropic: bool = False, compact: bool = False) -> list[dict[str, Any]]:
    """The VM tool schemas, in OpenAI ``tools`` shape or Anthropic ``tools`` shape.

    ``compact`` drops the optional parameters and most descriptions (small budgets); the
    handler accepts the same arguments either way.
    """
    tools = [_PAGE_FAULT_COMPACT, _SEARCH_PAGES_COMPACT] if compact else [_PAGE_FAULT, _SEARCH_PAGES]
    if not anthropic:
        return [
            {
                "type": "function",
                "function": {**t["function"], "parameters": dict(t["function"]["parameters"])},
            }
            for t in tools
        ]
    return [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "input_schema": dict(t["function"]["parameters"]),
        }
        for t in tools
    ]
