"""Serving the model's VM tool calls: ``page_fault`` and ``search_pages``.

``handle_vm_tool_call(state, name, arguments_json)`` returns the text of the tool
result. It never raises into the app: bad arguments, unknown page ids and calls over
the per-turn limit come back as a clear ``{"error": ...}`` result the model can read.
Each served call is recorded as a hidden ``PAGE_FAULT`` event, so the log shows what
the model recalled and the fault limit survives a reload.

>>> from sessionware.core.store import MemoryBackend, Store
>>> from sessionware.core.session.registry import registry_for
>>> state = registry_for(Store(MemoryBackend())).open_sync("faults")
>>> handle_vm_tool_call(state, "page_fault", '{"page_id": "msg_404"}')
'{"error":"unknown page id \\'msg_404\\'; use search_pages to find pages"}'
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sessionware.core.memory.enums import CompressionLevel, Modality, MutationType, PageType, VMTool
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.memory.plan import Plan
from sessionware.core.memory.snippets import snippet
from sessionware.core.memory.transcript import page_line
from sessionware.core.memory.vm import VirtualMemory
from sessionware.core.session.enums import EventType
from sessionware.core.session.state import SessionState

__all__ = ["VM_TOOL_NAMES", "handle_vm_tool_call", "is_vm_tool"]

logger = logging.getLogger(__name__)

VM_TOOL_NAMES = frozenset(t.value for t in VMTool)
_DEFAULT_FAULT_TOKENS = 800
_ENVELOPE_TOKENS = 40
# The assistant message that carries the call is resent with the result: leave room for it.
_CALL_TOKENS = 24


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
        limit = vm.policy.max_faults_per_turn
        if vm.faults_by_turn.get(turn, 0) >= limit:
            vm.counts["refused"] += 1
            return _error(f"memory call limit reached ({limit} per turn); answer with what you have")
        try:
            if name == VMTool.PAGE_FAULT:
                result, recalled = _page_fault(vm, args)
            else:
                result, recalled = _search(vm, args)
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
            metadata={"turn": turn, "recalled": recalled, "tokens": vm.counter.count_text(result)},
        )
        vm.sync()
        return result


def _fault_tokens(vm: VirtualMemory, args: dict[str, Any] | None = None) -> int:
    plan = vm.current_plan
    per_fault = plan.layout.per_fault if plan is not None else _DEFAULT_FAULT_TOKENS
    call = _CALL_TOKENS + (vm.counter.count_text(_dump(args)) if args else 0)
    return max(per_fault - _ENVELOPE_TOKENS - call, 32)


def _fit(vm: VirtualMemory, render: Any, items: list[str], limit: int) -> str:
    """Drop trailing items until the rendered result (JSON escaping included) fits ``limit``."""
    text: str = render(items)
    while items and vm.counter.count_text(text) > limit + _ENVELOPE_TOKENS:
        items = items[:-1]
        text = render(items)
    return text


def _find(vm: VirtualMemory, page_id: str) -> MemoryPage | None:
    page = vm.table.get(page_id)
    if page is not None:
        return page
    plan: Plan | None = vm.current_plan
    if plan is None:
        return None
    return plan.pages.get(page_id) or plan.chunk_page(page_id)


def _page_fault(vm: VirtualMemory, args: dict[str, Any]) -> tuple[str, list[str] | None]:
    page_id = str(args.get("page_id", "")).strip()
    if not page_id:
        return _error("page_fault needs a page_id"), None
    level = CompressionLevel(int(args.get("target_level", 0) or 0))
    page = _find(vm, page_id)
    if page is None:
        return _error(f"unknown page id {page_id!r}; use search_pages to find pages"), None
    budget = _fault_tokens(vm, args)
    plan = vm.current_plan
    compressor = plan.compressor if plan is not None else None
    text = page.text
    if compressor is not None:
        text = compressor.compress(text, level, budget)
        # JSON escaping can add tokens: shrink until the escaped text fits too.
        while text and vm.counter.count_text(json.dumps(text)) > budget:
            budget = max(budget - 16, 8)
            text = compressor.compress(page.text, level, budget)
    truncated = text != page.text
    page.mark_accessed(vm.turn_hint)
    vm.log(MutationType.FAULT_IN, [page.page_id], cause="page_fault")
    body: dict[str, Any] = {
        "page_id": page.page_id,
        "modality": Modality.TEXT.value,
        "level": int(level),
        "turns": f"t{page.turn}-{page.last_turn}" if page.last_turn > page.turn else f"t{page.turn}",
        "content": {"text": text},
    }
    if page.role is not None and page.page_type not in (PageType.SUMMARY, PageType.INDEX):
        body["role"] = page.role.value
    if truncated and level is CompressionLevel.FULL:
        body["truncated"] = True
    recalled = [page.page_id] if page.page_id in vm.table else []
    return _dump({"page": body, "effects": {"promoted_to_working_set": bool(recalled)}}), recalled


def _search(vm: VirtualMemory, args: dict[str, Any]) -> tuple[str, list[str] | None]:
    query = str(args.get("query", "")).strip()
    if not query:
        return _error("search_pages needs a query"), None
    limit = min(
        max(int(args.get("limit", vm.policy.max_search_results) or 1), 1), vm.policy.max_search_results
    )
    modality = args.get("modality")
    if modality is not None and modality not in {m.value for m in Modality}:
        return _error(f"unknown modality {modality!r}"), None
    plan = vm.current_plan

    def allow(page_id: str) -> bool:
        page = vm.table.get(page_id)
        if page is None or (modality is not None and page.modality.value != modality):
            return False
        return plan is None or not plan.in_window(page)

    hits = vm.index.search(query, limit=limit, allow=allow, follow=vm.policy.follow_references)
    budget = _fault_tokens(vm, args)
    count = vm.counter.count_text
    compressor = plan.compressor if plan is not None else None
    results: list[str] = []
    used = 0
    per_hit = max(budget // max(len(hits), 1), 48)
    for hit in hits:
        page = vm.table.get(hit.page_id)
        if page is None:
            continue
        if compressor is not None:
            text = snippet(page.text, query, per_hit - 16, compressor, count, anchor=hit.via)
        else:
            text = page.text[: per_hit * 3]
        line = page_line(page, text)
        cost = count(line) + 1
        if used + cost > budget:
            continue
        results.append(line)
        used += cost
    if not results:
        return _dump({"query": query, "results": [], "note": "no matching pages"}), []
    return _fit(vm, lambda items: _dump({"query": query, "results": items}), results, budget), []
