"""What a managed call sent, recorded with the call so the context can be shown exactly.

A managed request is put together from parts (``sessionware.core.memory``): the app's
system prompt, the memory block, the recent turns verbatim, the recall region, the
latest turn as the app sent it, and the tools. Each part but the memory block is in the
session's log already, so a copy of the request with every call would mostly repeat the
log (and the same prefix call after call: a 10,000-call session would hold 10,000
copies of its system prompt and memory block). A call records instead, under
``metadata["managed"]["sent"]`` (``SentContext``, about 150 bytes):

* ``parts``: the tokens of each part, by the context builder's own count;
* ``window``: the recent turns as ranges of transcript page numbers (page ``msg_<n>`` is
  the n-th message or tool result of the conversation's branch, in the log's order,
  leaving out hidden events and system messages);
* ``recalled``: the ids of the pages in the recall region;
* ``recall_before``: where the builder put that region: the first window page sent after
  it (None: after the whole window, right before the incoming message), as the builder's
  report says (``ContextReport.recall_before``);
* ``latest``: how many of the transcript's messages before the answer are the latest turn;
* ``block_hash``: a hash of the memory block's text; the text itself (``block``) and the
  page ids it shows are recorded only when the block differs from the one this process
  last recorded for the session: once per compaction, not once per call.

``sessionware ui`` reads it back (``sessionware.cli.ui.context``).

>>> SentContext(window=[(3, 8)], latest=1).pages()
['msg_3', 'msg_4', 'msg_5', 'msg_6', 'msg_7', 'msg_8']
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.memory import BuiltContext, VirtualMemory
from sessionware.core.memory.models import TokensByPart
from sessionware.core.memory.plan import current_plan
from sessionware.core.session.state import SessionState

__all__ = ["SENT_KEY", "SentContext", "sent_context"]

SENT_KEY = "sent"
"""The key of ``SentContext`` in ``metadata["managed"]``."""
_EXTENSION = "sessionware.managed.sent_block"
_PAGE_PREFIX = "msg_"


class SentContext(BaseModel):
    """A managed call's context, by reference to the log (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    parts: TokensByPart = Field(default_factory=TokensByPart)
    window: list[tuple[int, int]] = Field(default_factory=list)
    """Transcript page numbers of the recent turns, as inclusive ranges."""
    recalled: list[str] = Field(default_factory=list)
    recall_before: str | None = None
    """The first window page sent after the recall region; None: after the whole window.
    Absent from calls recorded before it was (their region preceded the window's last turn)."""
    latest: int = 0
    """Transcript messages, counted back from the call, that are the latest turn."""
    window_first_turn: int = 0
    block_hash: str = ""
    """Empty when no memory block was sent."""
    block: str | None = None
    """The memory block's text, when this call is the first recorded with it."""
    block_pages: list[str] | None = None

    def pages(self) -> list[str]:
        """The window's page ids, in order."""
        return [f"{_PAGE_PREFIX}{n}" for first, last in self.window for n in range(first, last + 1)]


def _ranges(page_ids: list[str]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for page_id in page_ids:
        if not page_id.startswith(_PAGE_PREFIX) or not page_id[len(_PAGE_PREFIX) :].isdigit():
            continue
        n = int(page_id[len(_PAGE_PREFIX) :])
        if ranges and ranges[-1][1] + 1 == n:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return ranges


def _block(state: SessionState, ctx: BuiltContext) -> tuple[str, list[str]] | None:
    """The memory block sent in ``ctx`` and its page ids (None when none was sent)."""
    report = ctx.report
    if report is None or not report.parts.memory:
        return None
    plan = current_plan(VirtualMemory.attach(state))
    if plan is None:
        return None
    text, _, ids = plan.block()
    # The very string the builder put in the request (not a later build's block).
    sent: list[Any] = [m.get("content") for m in ctx.messages] + [b.get("text") for b in ctx.system or ()]
    return (text, ids) if any(s is text for s in sent) else None


def sent_context(state: SessionState, ctx: BuiltContext, latest: int) -> dict[str, Any] | None:
    """``SentContext`` of a built context as recorded (a plain dict), or None without a report.

    ``latest``: how many messages of the latest turn are recorded with the call.
    """
    report = ctx.report
    if report is None:
        return None
    block = _block(state, ctx)
    # ``pages_included`` lists the block's pages, the window's, then the recall region's.
    included = report.pages_included[: len(report.pages_included) - len(report.recalled_pages)]
    if block is not None:
        included = included[len(block[1]) :]
    fields: dict[str, Any] = {
        "parts": report.parts.model_dump(exclude_defaults=True),
        "window": _ranges(included),
        "window_first_turn": report.window_first_turn,
        "latest": latest,
    }
    if report.recalled_pages:
        fields["recalled"] = list(report.recalled_pages)
        fields["recall_before"] = report.recall_before
    if block is not None:
        text, ids = block
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        fields["block_hash"] = digest
        if state.extensions.get(_EXTENSION) != digest:
            state.extensions[_EXTENSION] = digest
            fields["block"] = text
            fields["block_pages"] = list(ids)
    return fields
