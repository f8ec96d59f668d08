"""Serving the model's VM tool calls: ``page_fault`` and ``search_pages``.

``handle_vm_tool_call(state, name, arguments_json)`` returns the text of the tool
result. It never raises into the app: bad arguments, unknown page ids and calls over
the per-turn limit come back as a clear ``{"error": ...}`` result the model can read.
Each served call is recorded as a hidden ``PAGE_FAULT`` event, so the log shows what
the model recalled and the fault limit survives a reload.

A result is sized so the follow-up request stays inside the budget: the last build kept
a reserve free for memory calls, and each call may use its share of it
(``VirtualMemory.call_room``) for the assistant message that carries the call *and* its
result, counted exactly with the build's counter (the provider's call id gets a fixed
allowance). What a call would have used without that limit is recorded with it and sizes
the reserve of later builds. The limit of ``max_faults_per_turn`` calls counts the calls
made for one incoming message, recorded or not (``VirtualMemory.call_key``).

``search_pages`` ranks by score, returns up to ``limit`` (at most the schema's 10)
whole turns the last build did not show (the window and the recall region are left out:
the call is for what the model cannot see), a long one cut around its matching sentences,
and names by id (``in_context``) the matching pages it left out for being shown;
``page_fault`` loads a page whole with its neighbouring turns.

>>> from sessionware.core.store import MemoryBackend, Store
>>> from sessionware.core.session.registry import registry_for
>>> state = registry_for(Store(MemoryBackend())).open("faults")
>>> handle_vm_tool_call(state, "page_fault", '{"page_id": "msg_404"}')
'{"error":"unknown page id \\'msg_404\\'; use search_pages to find pages"}'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sessionware.core.memory.enums import CompressionLevel, Modality, MutationType, PageType, Provider, VMTool
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.memory.plan import Plan, current_plan
from sessionware.core.memory.search import SearchHit
from sessionware.core.memory.snippets import snippet
from sessionware.core.memory.transcript import recall_line
from sessionware.core.memory.vm import Counter, VirtualMemory
from sessionware.core.session.enums import EventType
from sessionware.core.session.state import SessionState

__all__ = ["VM_TOOL_NAMES", "handle_vm_tool_call", "is_vm_tool"]

logger = logging.getLogger(__name__)

VM_TOOL_NAMES = frozenset(t.value for t in VMTool)
_DEFAULT_FAULT_TOKENS = 800
# A provider's call id ("call_…", "toolu_…") is repeated on the result message.
_ID_TOKENS = 16
_MIN_SNIPPET = 8
_DEFAULT_RESULTS = 5
_IN_CONTEXT = "the matching pages are already in your context"
# Turns on each side that page_fault brings with a page.
_NEIGHBOURS = 2
_RETURNED = "shown whole by an earlier call this turn"
# Score share a page takes from each page within two turns in search ranking.
_NEIGHBOUR_SCORE = 0.3


def is_vm_tool(name: str) -> bool:
    """True for the tool names the wrapper serves itself."""
    return name in VM_TOOL_NAMES


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _error(message: str) -> str:
    return _dump({"error": message})


def handle_vm_tool_call(state: SessionState, name: str, arguments_json: str | dict[str, Any]) -> str:
    """Serve one VM tool call for ``state``'s session; return the tool-result text."""
    vm = VirtualMemory.attach(state)
    with vm.lock:
        vm.sync()
        try:
            args = json.loads(arguments_json) if isinstance(arguments_json, str) else dict(arguments_json)
        except ValueError as exc:
            return _error(f"arguments are not valid JSON: {exc}")
        if not isinstance(args, dict):
            return _error("arguments must be a JSON object")
        if name not in VM_TOOL_NAMES:
            return _error(f"unknown memory tool {name!r}; use page_fault or search_pages")
        turn = vm.turn_hint
        key = vm.call_key or str(turn)
        limit = vm.policy.max_faults_per_turn
        if vm.calls_by_key.get(key, 0) >= limit:
            vm.counts["refused"] += 1
            return _error(f"memory call limit reached ({limit} per turn); answer with what you have")
        # A dict came from an SDK that parsed the model's JSON: count its roomier spelling.
        sent = arguments_json if isinstance(arguments_json, str) else json.dumps(args, ensure_ascii=False)
        framing = _framing(vm, name, args, sent)
        served = _Served(vm, (vm.call_room or _DEFAULT_FAULT_TOKENS) - framing)
        try:
            if name == VMTool.PAGE_FAULT:
                result, recalled = served.page_fault(args)
            else:
                result, recalled = served.search(args)
        except (TypeError, ValueError) as exc:
            return _error(f"bad arguments for {name}: {exc}")
        if recalled is None:
            return result
        vm.counts["faults" if name == VMTool.PAGE_FAULT else "searches"] += 1
        vm.record_event(
            EventType.PAGE_FAULT,
            tool_name=name,
            tool_arguments=args,
            hidden=True,
            metadata={
                "turn": turn,
                "call_key": key,
                "recalled": recalled,
                "found": served.found,
                "whole": served.whole,
                "tokens": served.count(result),
                "wanted": framing + served.wanted,
            },
        )
        vm.sync()
        return result


def _framing(vm: VirtualMemory, name: str, args: dict[str, Any], sent: str) -> int:
    """Tokens of a call besides its result text: the call message and the result's framing."""
    plan = current_plan(vm)
    counter = plan.counter if plan is not None else vm.counter
    call: dict[str, Any]
    result: dict[str, Any]
    if plan is not None and plan.provider is Provider.ANTHROPIC:
        call = {"role": "assistant", "content": [{"type": "tool_use", "name": name, "input": args}]}
        result = {"role": "user", "content": [{"type": "tool_result", "content": ""}]}
    else:
        function = {"name": name, "arguments": sent}
        call = {"role": "assistant", "content": None, "tool_calls": [{"function": function}]}
        result = {"role": "tool", "content": ""}
    return counter.count_message(call) + counter.count_message(result) + _ID_TOKENS


def _find(vm: VirtualMemory, page_id: str) -> MemoryPage | None:
    page = vm.table.get(page_id)
    if page is not None:
        return page
    plan: Plan | None = current_plan(vm)
    if plan is None:
        return None
    return plan.pages.get(page_id) or plan.chunk_page(page_id)


class _Served:
    """One tool call's result, made to fit ``room`` tokens."""

    def __init__(self, vm: VirtualMemory, room: int) -> None:
        self.vm = vm
        self.room = room
        self.wanted = 0
        """Tokens the result would have used with no room limit."""
        self.found: list[str] = []
        """Pages a search showed (they stay in the recall region for the rest of the turn)."""
        self.whole: list[str] = []
        """Pages this call returned whole (``VirtualMemory.turn_whole``)."""
        key, whole = vm.turn_whole
        self.returned: set[str] = whole if key == (vm.call_key or str(vm.turn_hint)) else set()
        """Pages this turn's earlier calls returned whole: they are in the model's context."""
        self.plan = current_plan(vm)
        counter: Counter = self.plan.counter if self.plan is not None else vm.counter
        self.count: Callable[[str], int] = counter.count_text

    def _shrink(self, render: Callable[[int], str], start: int) -> str | None:
        """``render(limit)`` for the largest limit (from ``start`` down) whose text fits."""
        limit = start
        while True:
            text = render(limit)
            over = self.count(text) - self.room
            if over <= 0:
                return text
            if limit <= _MIN_SNIPPET:
                return None
            limit = max(min(limit - over, limit - 1), _MIN_SNIPPET)

    def page_fault(self, args: dict[str, Any]) -> tuple[str, list[str] | None]:
        vm = self.vm
        page_id = str(args.get("page_id", "")).strip()
        if not page_id:
            return _error("page_fault needs a page_id"), None
        level = CompressionLevel(int(args.get("target_level", 0) or 0))
        page = _find(vm, page_id)
        if page is None:
            return _error(f"unknown page id {page_id!r}; use search_pages to find pages"), None
        compressor = self.plan.compressor if self.plan is not None else None
        recalled = [page.page_id] if page.page_id in vm.table else []
        # A page an earlier call of this turn returned whole is in the model's context: the
        # fault brings what surrounds it (wider) instead of repeating it.
        repeat = page.page_id in self.returned and level is CompressionLevel.FULL
        reach = _NEIGHBOURS + 1 if repeat else _NEIGHBOURS
        around = self._neighbours(page, reach) if level is CompressionLevel.FULL else []

        def render(limit: int | None, context: list[MemoryPage]) -> str:
            text = page.text
            if limit is not None and compressor is not None:
                text = compressor.compress(page.text, level, limit)
            content: dict[str, Any] = {"returned": _RETURNED} if repeat else {"text": text}
            body: dict[str, Any] = {
                "page_id": page.page_id,
                "modality": Modality.TEXT.value,
                "level": int(level),
                "turns": f"t{page.turn}-{page.last_turn}" if page.last_turn > page.turn else f"t{page.turn}",
                "content": content,
            }
            if page.role is not None and page.page_type not in (PageType.SUMMARY, PageType.INDEX):
                body["role"] = page.role.value
            if text != page.text and level is CompressionLevel.FULL and not repeat:
                body["truncated"] = True
            out: dict[str, Any] = {"page": body}
            if context:
                ordered = sorted(context, key=lambda p: vm.position.get(p.page_id, 0))
                out["neighbours"] = [recall_line(p, quoted=False) for p in ordered]
            out["effects"] = {"promoted_to_working_set": bool(recalled)}
            return _dump(out)

        self.wanted = self.count(render(None, around))
        result = self._shrink(lambda limit: render(limit, []), max(self.room, _MIN_SNIPPET))
        if result is None:
            return _error("no room for memory results in this budget"), None
        if '"truncated"' not in result:
            if not repeat:
                self.whole.append(page.page_id)
            shown: list[MemoryPage] = []
            for other in around:  # nearest first, each whole or not at all
                candidate = render(None, [*shown, other])
                if self.count(candidate) <= self.room:
                    shown.append(other)
                    result = candidate
            self.whole.extend(p.page_id for p in shown)
        page.mark_accessed(vm.turn_hint)
        vm.log(MutationType.FAULT_IN, [page.page_id], cause="page_fault")
        return result, recalled

    def _neighbours(self, page: MemoryPage, reach: int) -> list[MemoryPage]:
        """The turns within ``reach`` of ``page`` not already in the context (shown by the
        build or returned whole by this turn's calls), nearest first."""
        vm = self.vm
        at = vm.position.get(page.page_id)
        if at is None:
            return []
        out: list[MemoryPage] = []
        seen = vm.shown | self.returned
        for d in range(1, reach + 1):
            for j in (at - d, at + d):
                if 0 <= j < len(vm.order) and vm.order[j] not in seen:
                    other = vm.table.get(vm.order[j])
                    if other is not None:
                        out.append(other)
        return out

    def search(self, args: dict[str, Any]) -> tuple[str, list[str] | None]:
        vm = self.vm
        query = str(args.get("query", "")).strip()
        if not query:
            return _error("search_pages needs a query"), None
        asked = int(args.get("limit") or _DEFAULT_RESULTS)
        limit = max(min(asked, vm.policy.max_search_results), 1)
        modality = args.get("modality")
        if modality is not None and modality not in {m.value for m in Modality}:
            return _error(f"unknown modality {modality!r}"), None
        plan = self.plan

        def searchable(page_id: str) -> bool:
            page = vm.table.get(page_id)
            if page is None or (modality is not None and page.modality.value != modality):
                return False
            return plan is None or not plan.in_window(page)

        found = vm.index.search(
            query,
            limit=limit,
            allow=searchable,
            follow=vm.policy.follow_references,
            neighbours=_NEIGHBOUR_SCORE,
            hide=vm.shown.__contains__,
        )
        hits = _best_first(found)
        # Matches the context already shows whole are named, not repeated: those that rank
        # with the results (all of them when nothing else matches).
        floor = min((h.score for h in found if h.via is None), default=0.0)
        shown = [
            h.page_id
            for h in vm.index.search(
                query,
                limit=limit,
                allow=lambda page_id: page_id in vm.shown and searchable(page_id),
                neighbours=_NEIGHBOUR_SCORE,
            )
            if h.score >= floor
        ]
        if not hits:
            if shown:
                return _dump({"results": [], "in_context": shown, "note": _IN_CONTEXT}), []
            return _dump({"results": [], "note": "no matching pages"}), []
        result = self._lines(hits, query, shown)
        if result is None:
            return _error("no room for memory results in this budget"), None
        return result, []

    def _lines(self, hits: list[SearchHit], query: str, shown: list[str]) -> str | None:
        """As many hits as fit, best first, each whole; a long page cut around the sentences
        that match (``snippets.snippet``) to what is left, or half the room. ``shown``: ids of
        matching pages the context already shows, named after the results when room is left
        (results come first)."""
        pages = [p for p in (self.vm.table.get(h.page_id) for h in hits) if p is not None]
        vias = {h.page_id: h.via for h in hits}
        compressor = self.plan.compressor if self.plan is not None else None

        def cut(page: MemoryPage, limit: int) -> str:
            if compressor is None:
                return recall_line(page, page.text[: limit * 3], quoted=False)
            text = snippet(page.text, query, limit, compressor, self.count, anchor=vias.get(page.page_id))
            return recall_line(page, text, quoted=False)

        def render(items: list[str], named: list[str]) -> str:
            return _dump({"results": items, "in_context": named} if named else {"results": items})

        self.wanted = self.count(render([recall_line(p, quoted=False) for p in pages], shown))
        items: list[str] = []
        used = self.count(render(items, []))
        for page in pages:
            candidate = [*items, recall_line(page, quoted=False)]
            size = self.count(render(candidate, []))
            whole = True
            if size > self.room and page.tokens > self.room // 4:
                share = max(min(self.room - used, self.room // 2) - 16, _MIN_SNIPPET)
                candidate = [*items, cut(page, share)]
                size = self.count(render(candidate, []))
                whole = False
            if size <= self.room:
                items, used = candidate, size
                self.found.append(page.page_id)
                if whole:
                    self.whole.append(page.page_id)
        if items:
            named = list(shown)
            while named and self.count(render(items, named)) > self.room:
                named.pop()
            return render(items, named)
        if not pages:
            return None
        shrunk = self._shrink(lambda limit: render([cut(pages[0], limit)], []), max(self.room // 2, 24))
        if shrunk is not None:
            self.found.append(pages[0].page_id)
        return shrunk


def _best_first(hits: list[SearchHit]) -> list[SearchHit]:
    """The best hit, then the pages its identifiers lead to, then the other hits: a chain
    of references is worth more than a weaker match when room is short."""
    if not hits:
        return hits
    followed = [h for h in hits if h.via is not None]
    direct = [h for h in hits if h.via is None]
    return direct[:1] + followed + direct[1:]
