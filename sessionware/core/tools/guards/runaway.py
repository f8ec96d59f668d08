"""``RunawayGuard``: stop a model that loops instead of answering.

Within one user turn it detects:

* the **same call repeated**: a tool called again with identical arguments once it has
  already been called ``max_identical_calls`` times (blocked; the reason quotes the
  earlier result so the model can use it);
* **failure loops**: a tool that failed ``max_consecutive_failures`` times in a row
  (blocked);
* **no progress**: the last ``no_progress_window`` calls brought nothing new (each
  failed, or repeated an earlier call of the turn and got a result already seen); a
  warning by default.

Every threshold treats ``0`` or ``None`` as "never".
"""

from __future__ import annotations

from sessionware.core.tools.guards.base import Enforcement, GuardContext, GuardDecision
from sessionware.core.tools.models import ToolInvocation
from sessionware.core.tools.text import args_key, summarize

__all__ = ["RunawayGuard"]


class RunawayGuard:
    name = "runaway"

    def __init__(
        self,
        *,
        max_identical_calls: int | None = 3,
        max_consecutive_failures: int | None = 4,
        no_progress_window: int | None = 6,
        no_progress: Enforcement = Enforcement.WARN,
    ) -> None:
        self.max_identical_calls = max_identical_calls or None
        self.max_consecutive_failures = max_consecutive_failures or None
        self.no_progress_window = no_progress_window or None
        self.no_progress = Enforcement(no_progress)

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        records = context.this_turn()
        if self.max_identical_calls is not None:
            key = args_key(call.arguments)
            same = [r for r in records if r.tool == call.name and r.args_key == key]
            pending = sum(1 for c in context.pending if c.name == call.name and args_key(c.arguments) == key)
            if len(same) + pending >= self.max_identical_calls:
                last = (
                    f" The last result was: {summarize(same[-1].result)}."
                    if same and same[-1].error is None
                    else ""
                )
                return GuardDecision.block(
                    self.name,
                    f"`{call.name}` was already called {len(same) + pending} times with these arguments "
                    f"this turn.{last} Use the earlier result instead of calling it again.",
                )
        if self.max_consecutive_failures is not None:
            failures = 0
            last_error = ""
            for record in reversed([r for r in records if r.tool == call.name]):
                if not record.status.failed:
                    break
                if not last_error and record.error is not None:
                    last_error = f" (last error: {record.error.message})"
                failures += 1
            if failures >= self.max_consecutive_failures:
                return GuardDecision.block(
                    self.name,
                    f"`{call.name}` failed {failures} times in a row this turn{last_error}. "
                    "Stop calling it; answer with what you have or try another approach.",
                )
        window = self.no_progress_window
        if (
            window is not None
            and self.no_progress is not Enforcement.OFF
            and len(records) >= window
            and not any(r.novel for r in records[-window:])
        ):
            return GuardDecision.enforce(
                self.name,
                self.no_progress,
                f"the last {window} tool calls brought no new result; consider answering now",
            )
        return GuardDecision.allow(self.name)
