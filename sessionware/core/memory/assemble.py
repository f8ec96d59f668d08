"""Putting one context together: window, recall, fitting to the budget, rendering."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.memory.demand import has_recall_signal
from sessionware.core.memory.enums import CompressionLevel, MutationType, Provider
from sessionware.core.memory.models import BuiltContext, ContextReport, ContextSnapshot, TokensByPart
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.memory.snippets import snippet
from sessionware.core.memory.transcript import Message, merge_same_role, page_line

if TYPE_CHECKING:
    from sessionware.core.memory.builder import _Build
    from sessionware.core.memory.plan import Plan
    from sessionware.core.memory.vm import VirtualMemory

__all__ = ["Assembly"]

logger = logging.getLogger(__name__)

_CONTINUED = "[Earlier turns are summarised in the system prompt.]"
_TRUNCATED = " [truncated to fit the context budget; search_pages finds the rest]"


def _announced(messages: list[Message]) -> set[str]:
    ids = {str(c["id"]) for m in messages for c in m.get("tool_calls") or ()}
    for m in messages:
        if isinstance(m.get("content"), list):
            ids.update(
                str(b["id"]) for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"
            )
    return ids


class Assembly:
    def __init__(
        self,
        vm: VirtualMemory,
        plan: Plan,
        build: _Build,
        *,
        incoming: list[Message],
        incoming_counts: list[int],
        answered: tuple[str, ...],
        query_text: str,
    ) -> None:
        self.vm = vm
        self.plan = plan
        self.b = build
        self.incoming = incoming
        self.incoming_counts = incoming_counts
        self.answered = answered
        self.query_text = query_text
        self.degraded: list[str] = []
        self.anthropic = build.provider is Provider.ANTHROPIC

    # -- parts ----------------------------------------------------------------------------

    def _window(self) -> list[tuple[list[Message], list[int], list[str]]]:
        """The turns from the plan's first verbatim one: the closed ones as the plan keeps
        them, then the rest (the latest turn, its tool calls answered by ``incoming``)."""
        plan, turns = self.plan, self.vm.turns
        out = list(plan.closed_window)
        last = len(turns) - 1
        for i in range(plan.start_turn + len(out), len(turns)):
            msgs, counts = plan.render_turn(turns[i], self.answered if i == last else ())
            out.append((msgs, counts, turns[i].page_ids))
        if self.answered:
            have = _announced(out[-1][0]) if out else set()
            missing = [a for a in self.answered if a not in have]
            if missing:
                raise InvalidSessionOperation(
                    "build", f"incoming tool results {missing} answer no tool call of the session's last turn"
                )
        return out

    def _recall(self, window_from: int, block_ids: set[str]) -> tuple[str, int, list[str]]:
        vm, plan = self.vm, self.plan
        cap = plan.layout.recall_cap
        if cap <= 0:
            return "", 0, []

        def visible(page: MemoryPage) -> bool:
            return (plan.in_window(page) and page.turn >= window_from) or page.page_id in block_ids

        chosen: list[MemoryPage] = [p for p in vm.working_set.recalled_before(vm.turn_hint) if not visible(p)]
        if vm.policy.demand_paging and self.query_text and has_recall_signal(self.query_text):
            taken = {p.page_id for p in chosen}

            def allow(page_id: str) -> bool:
                page = vm.table.get(page_id)
                return page is not None and page_id not in taken and not visible(page)

            hits = vm.index.search(self.query_text, limit=vm.policy.max_prefetch_pages, allow=allow)
            for hit in hits:
                page = vm.table.get(hit.page_id)
                if page is not None:
                    chosen.append(page)
                    vm.counts["prefetched"] += 1
            if hits:
                vm.log(MutationType.FAULT_IN, [h.page_id for h in hits], cause="demand paging")
        if not chosen:
            return "", 0, []
        per_page = max(cap // len(chosen), 24)
        lines: list[str] = []
        ids: list[str] = []
        used = 0
        count = self.b.counter.count_text
        for page in sorted(chosen, key=lambda p: (p.seq, p.page_id)):
            text = snippet(page.text, self.query_text, per_page - 12, self.plan.compressor, count)
            line = page_line(page, text)
            cost = count(line) + 1
            if used + cost > cap - 24:
                continue
            lines.append(line)
            ids.append(page.page_id)
            used += cost
        if not lines:
            return "", 0, []
        text = "<VM:RECALL>\n" + "\n".join(lines) + "\n</VM:RECALL>"
        tokens = (
            count(text)
            if self.anthropic
            else self.b.counter.count_message({"role": "system", "content": text})
        )
        return text, tokens, ids

    def _shrink(self, msgs: list[Message], counts: list[int], excess: int) -> tuple[list[Message], list[int]]:
        """Cut the largest string contents of the latest turn until ``excess`` is gone."""
        msgs, counts = list(msgs), list(counts)
        for i in sorted(range(len(msgs)), key=lambda j: -counts[j]):
            if excess <= 0:
                break
            content = msgs[i].get("content")
            if not isinstance(content, str) or counts[i] < 64:
                continue
            target = max(counts[i] - excess - 24, 16)
            cut = self.plan.compressor.compress(content, CompressionLevel.FULL, target) + _TRUNCATED
            msgs[i] = {**msgs[i], "content": cut}
            new = self.b.counter.count_message(msgs[i])
            excess -= counts[i] - new
            counts[i] = new
        return msgs, counts

    # -- the whole ------------------------------------------------------------------------

    def finish(self, compactions: int) -> BuiltContext:
        b, plan = self.b, self.plan
        text, tokens, ids = plan.block()
        window = self._window()
        open_turns = window[len(plan.closed_window) :]
        p = _Parts(
            block=(text, tokens, ids),
            window=window,
            first_turn=plan.start_turn,
            window_tokens=plan.window_tokens + sum(sum(counts) for _, counts, _ in open_turns),
        )
        p.tools, p.tools_tokens = list(b.vm_tools), b.tools_tokens
        p.reserve = plan.layout.fault_reserve if p.tools else 0
        p.recall = self._recall(p.first_turn, set(ids))
        self._fit(p)
        plan.visible_from = p.first_turn
        return self._render(p, compactions)

    def _total(self, p: _Parts) -> int:
        window = p.window_tokens
        if self.anthropic and (
            not p.window or (bool(p.window[0][0]) and p.window[0][0][0]["role"] != "user")
        ):
            window += 12  # the "(continued)" user message Anthropic needs first
        return (
            self.b.system_tokens
            + p.block[1]
            + window
            + p.recall[1]
            + sum(self.incoming_counts)
            + p.tools_tokens
        )

    def _fit(self, p: _Parts) -> None:
        """Give up parts, least valuable first, until the context fits the budget."""
        b = self.b
        limit = b.budget - p.reserve
        while self._total(p) > limit and len(p.window) > 1:
            p.window_tokens -= sum(p.window.pop(0)[1])
            p.first_turn += 1
            p.trimmed += 1
        if self._total(p) > limit and p.recall[0]:
            p.recall = ("", 0, [])
            self.degraded.append("recall")
        if self._total(p) > limit and p.window:
            msgs, counts, ids = p.window[-1]
            before = sum(counts)
            msgs, counts = self._shrink(msgs, counts, self._total(p) - limit)
            p.window[-1] = (msgs, counts, ids)
            p.window_tokens += sum(counts) - before
        if self._total(p) > limit and p.tools:
            p.tools, p.reserve, limit = [], 0, b.budget
            p.tools_tokens = b.counter.count_tools(b.app_tools) if b.app_tools else 0
            self.degraded.append("fault_reserve")
        if self._total(p) > limit and p.block[0]:
            logger.warning("memory block dropped: %d tokens over budget %d", self._total(p) - limit, b.budget)
            p.block = ("", 0, [])
            self.degraded.append("memory_block")
        if self._total(p) > limit and p.window:
            p.window, p.window_tokens = [], 0
            self.degraded.append("window")
        if self._total(p) > limit:
            raise TokenLimitExceeded(limit, self._total(p), what="context after all compression")

    def _history(self, p: _Parts) -> list[Message]:
        """The window's messages, as copies: the rendered turns are cached for later builds."""
        history: list[Message] = []
        for msgs, _, _ in p.window:
            history.extend(map(dict, msgs))
        return history

    def _anthropic_body(self, p: _Parts, history: list[Message], messages: list[Message]) -> int:
        """Tokens of Anthropic ``messages``: merged same-role messages are counted anew."""
        counts = [count for _, turn_counts, _ in p.window for count in turn_counts]
        known = {id(msg): count for msg, count in zip(history, counts, strict=True)}
        for msg, count in zip(self.incoming, self.incoming_counts, strict=True):
            known[id(msg)] = count
        body = 0
        for msg in messages:
            found = known.get(id(msg))
            body += found if found is not None else self.b.counter.count_message(msg)
        return body

    def _anthropic(self, p: _Parts, history: list[Message]) -> tuple[list[Message], list[dict[str, Any]]]:
        b = self.b
        system: list[dict[str, Any]] = [{"type": "text", "text": b.prompt}] if b.prompt else []
        if p.block[0]:
            block: dict[str, Any] = {"type": "text", "text": p.block[0]}
            if self.vm.policy.anthropic_cache_control:
                block["cache_control"] = {"type": "ephemeral"}
            system.append(block)
        if p.recall[0]:
            system.append({"type": "text", "text": p.recall[0]})
        messages = history + self.incoming
        if messages and messages[0]["role"] != "user":
            messages.insert(0, {"role": "user", "content": _CONTINUED})
        return merge_same_role(messages), system

    def _openai(self, p: _Parts, history: list[Message]) -> list[Message]:
        messages: list[Message] = []
        if self.b.prompt:
            messages.append({"role": "system", "content": self.b.prompt})
        if p.block[0]:
            messages.append({"role": "system", "content": p.block[0]})
        messages.extend(history)
        if p.recall[0]:
            messages.append({"role": "system", "content": p.recall[0]})
        messages.extend(self.incoming)
        return messages

    def _render(self, p: _Parts, compactions: int) -> BuiltContext:
        b, vm, plan = self.b, self.vm, self.plan
        history = self._history(p)
        # Our system parts: the prompt message (with reply priming) plus block and recall.
        system_tokens = b.system_tokens - 3 + p.block[1] + p.recall[1]
        system: list[dict[str, Any]] | None = None
        incoming = sum(self.incoming_counts)
        if self.anthropic:
            messages, system = self._anthropic(p, history)
            if not system:
                system_tokens = 0
            body = self._anthropic_body(p, history, messages)
        else:
            # The window and the incoming turn, each message counted when it was rendered.
            messages = self._openai(p, history)
            body = p.window_tokens + incoming
        tokens = 3 + system_tokens + body + p.tools_tokens
        prompt_tokens = b.system_tokens - 3 if b.prompt or self.anthropic else 0
        window_ids = [pid for _, _, ids in p.window for pid in ids]
        included = p.block[2] + window_ids + p.recall[2]
        stable = prompt_tokens + p.block[1]
        # Built from values computed here. The context itself is constructed without
        # validation, which would copy every message once more.
        report = ContextReport(
            model=b.model,
            provider=b.provider,
            budget=b.budget,
            tokens=tokens,
            exact=b.counter.exact,
            parts=TokensByPart(
                system=prompt_tokens + 3,
                memory=p.block[1],
                window=body - incoming,
                recall=p.recall[1],
                incoming=incoming,
                tools=p.tools_tokens,
            ),
            fault_reserve_tokens=p.reserve,
            turns_total=len(vm.turns),
            window_first_turn=p.first_turn,
            pages_total=len(vm.table),
            pages_included=included,
            pages_evicted=plan.evicted_pages,
            pages_compressed=len(plan.pages),
            recalled_pages=p.recall[2],
            compactions=compactions,
            prefix_version=plan.block_version,
            stable_prefix_tokens=stable,
            cacheable_prefix_tokens=stable + p.window_tokens - (sum(p.window[-1][1]) if p.window else 0),
            trimmed_turns=p.trimmed,
            degraded=self.degraded,
        )
        vm.snapshots[vm.turn_hint] = ContextSnapshot(
            turn=vm.turn_hint, page_ids=included, tokens=tokens, budget=b.budget
        )
        return BuiltContext.model_construct(messages=messages, system=system, tools=p.tools, report=report)


@dataclass(slots=True)
class _Parts:
    block: tuple[str, int, list[str]]
    window: list[tuple[list[Message], list[int], list[str]]]
    first_turn: int
    window_tokens: int
    """Tokens of the messages in ``window`` (kept as turns are given up)."""
    recall: tuple[str, int, list[str]] = ("", 0, [])
    tools: list[dict[str, Any]] = field(default_factory=list)
    tools_tokens: int = 0
    reserve: int = 0
    trimmed: int = 0
