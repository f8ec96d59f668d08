"""A managed call between its hooks: what was sent, what it may still do.

``ManagedHooks.before_send`` makes one per call (kept as ``HookedCall.hook_state``);
the hooks after each round (``hooks``, ``live``) read and update it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sessionware.adapters.managed.shapes import Shape
from sessionware.core.session.state import SessionState

__all__ = ["Run"]


@dataclass(slots=True)
class Run:
    """A managed call between its hooks (``HookedCall.hook_state``)."""

    shape: Shape
    state: SessionState
    body: Mapping[str, Any]
    """What was sent last."""
    hide_calls: bool
    """Whether memory tools were offered (their calls are then served and hidden)."""
    model: str
    budget: int
    managed: dict[str, Any]
    """``metadata["managed"]`` of the call's final event (updated in place)."""
    later: list[Any]
    """The latest turn's drafts until recorded (the answer's record takes them otherwise)."""
    vm_tools: list[dict[str, Any]]
    """The memory tools in the endpoint's shape (added to what the SDK prepared, for a
    call taken at the resource method)."""
    rounds: int = 0
    forced: bool = False
    mixed: bool = False
    """The last hidden round answered memory calls made beside the app's own calls."""

    def can_go_on(self, max_rounds: int) -> bool:
        """Whether a memory call of the next round would be served (not forced, rounds left)."""
        return self.hide_calls and not self.forced and self.rounds < max_rounds
