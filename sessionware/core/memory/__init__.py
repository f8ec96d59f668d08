"""The virtual memory: keeps any conversation inside a token budget.

``build`` / ``abuild`` produce the context of a managed call; ``handle_vm_tool_call``
serves the model's ``page_fault`` / ``search_pages`` calls; ``VirtualMemory`` is the
per-session state behind both; ``ContextPolicy`` configures it.
"""

from __future__ import annotations

from sessionware.core.memory.builder import abuild, build
from sessionware.core.memory.enums import (
    CompressionLevel,
    Modality,
    PageType,
    Provider,
    StorageTier,
    VMMode,
    VMTool,
)
from sessionware.core.memory.faults import handle_vm_tool_call, is_vm_tool
from sessionware.core.memory.models import BuiltContext, ContextReport, VMMetrics
from sessionware.core.memory.pages import MemoryPage, PageTable
from sessionware.core.memory.policy import ContextPolicy, SummarizeFn
from sessionware.core.memory.vm import VirtualMemory

__all__ = [
    "BuiltContext",
    "CompressionLevel",
    "ContextPolicy",
    "ContextReport",
    "MemoryPage",
    "Modality",
    "PageTable",
    "PageType",
    "Provider",
    "StorageTier",
    "SummarizeFn",
    "VMMetrics",
    "VMMode",
    "VMTool",
    "VirtualMemory",
    "abuild",
    "build",
    "handle_vm_tool_call",
    "is_vm_tool",
]
