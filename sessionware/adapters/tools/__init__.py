"""Tool engines wrapped like SDK clients: ``sessionware.wrap(tool_processor)`` (see ``processor``).

Only ``is_tool_processor`` lives here: ``wrap`` asks it about every client, and it
imports neither the engine nor the tool core (``processor`` does, when one is wrapped).
"""

from __future__ import annotations

import sys

__all__ = ["is_tool_processor"]


def is_tool_processor(obj: object) -> bool:
    """True for a ``chuk_tool_processor.ToolProcessor`` (never imports the engine)."""
    module = sys.modules.get("chuk_tool_processor.core.processor")
    return module is not None and isinstance(obj, module.ToolProcessor)
