"""Putting one context together: window, recall, fitting to the budget, rendering.

After the stable prefix (system prompt, memory block) and the verbatim window come the
recall region and the incoming turn. The recall region is chosen per build with the
incoming message in hand: pages the model recalled earlier in this user turn (through the
app's own tool rounds), pages it recalled on earlier turns, then the pages of
the whole session that best match the user's words (field-aware BM25 with stemming, a
recency prior and a share of the neighbours' scores), each with its neighbouring turns
(the best few with one more on each side), whole, in conversation order, until the
budget is full but for the reserve kept for memory calls. That reserve is sized from
what this session's calls wanted. The region is chosen once per incoming message: the
later rounds of a turn (after the app's own tool calls) send its lines again, so their
requests repeat the first one's bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.memory.enums import CompressionLevel, MutationType, Provider
from sessionware.core.memory.layout import Layout
from sessionware.core.memory.models import BuiltContext, ContextReport, ContextSnapshot, TokensByPart
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.memory.plan import Plan
from sessionware.core.memory.request import BuildRequest, opens_turn
from sessionware.core.memory.snippets import snippet
from sessionware.core.memory.transcript import (
    WHOLE_TYPES,
    Message,
    merge_same_role,
    recall_line,
    whole_recall_line,
)
from sessionware.core.memory.vm import VirtualMemory

__all__ = ["Assembly"]

logger = logging.getLogger(__name__)

_CONTINUED = "[Earlier turns are summarised in the system prompt.]"
_TRUNCATED = " [truncated to fit the context budget; search_pages finds the rest]"
_RECALL_HEAD = "<VM:RECALL>\n"
_RECALL_TAIL = "</VM:RECALL>"
# Hits looked at for the recall region, at most (each brings its neighbours).
_MAX_RECALL_HITS = 400
# Pages in a row that no longer fit the recall room before it counts as full.
_GIVE_UP = 8
# Pages recalled by memory calls on earlier turns may take this share of the recall room.
_WORKING_SET_SHARE = 0.25
# A page longer than this share of the recall room is shown as a snippet around the query.
_LONG_PAGE_SHARE = 0.25
# Score share a page takes from each page within two turns (a question and its answer sit together).
_NEIGHBOUR_SCORE = 0.3
# The best hits bring one more turn on each side than ``recall_neighbours``: a reply that
# answers them often sits two turns away (LoCoMo at 4k: +2 points of evidence in context;
# planted facts: -1 point, none lost after recall). More hits widened cost planted facts.
_WIDE_HITS = 5


def call_reserve(vm: VirtualMemory, layout: Layout) -> tuple[int, int]:
    """(tokens kept free for memory calls, tokens one call may use), sized from what this
    session's recent calls wanted: their 90th percentile per call, within the layout's cap
    and at least ``min_fault_tokens`` where the cap allows."""
    policy = vm.policy
    if layout.reserve_cap <= 0:
        return 0, 0
    calls = policy.max_faults_per_turn
    most = layout.reserve_cap // calls
    least = min(policy.min_fault_tokens, most)
    if vm.call_wanted:
        wanted = sorted(vm.call_wanted)
        per_call = wanted[min(int(0.9 * len(wanted)), len(wanted) - 1)]
    else:
        per_call = 2 * policy.min_fault_tokens
    per_call = max(least, min(per_call, most))
    return per_call * calls, per_call


def _offsets(reach: int) -> tuple[list[int], list[int]]:
    """Positions a recall hit brings, relative to it: itself, then its neighbours nearest
    first (0, -1, +1, -2, +2, ...) up to ``reach``, and one further for the best hits."""
    narrow = [0, *(o for d in range(1, reach + 1) for o in (-d, d))]
    return narrow, [*narrow, -(reach + 1), reach + 1]


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
        build: BuildRequest,
        *,
        answered: tuple[str, ...],
        query_text: str,
    ) -> None:
        self.vm = vm
        self.plan = plan
        self.b = build
        self.incoming = build.incoming
        self.incoming_counts = build.incoming_counts
        self.answered = answered
        self.query_text = query_text
        self.degraded: list[str] = []
        self.anthropic = build.provider is Provider.ANTHROPIC
        self.opens = opens_turn(build.incoming, build.provider)

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

    def _stable_recall(self, window_from: int, block_ids: set[str], room: int) -> tuple[str, int, list[str]]:
        """The recall region, chosen once per incoming message: a later build for the same
        message (the rounds after the app's own tool calls) sends the same lines again, the
        longest run of them from the first that fits, so a cache reads past their start."""
        vm, b = self.vm, self.b
        key = f"{vm.call_key}|{b.counter_key}|{b.budget}|{self.plan.block_version}|{vm.policy.recall}"
        framing = b.counter.count_text(_RECALL_HEAD) + b.counter.count_text(_RECALL_TAIL)
        # Ours is a system message (OpenAI) or a user message merged into the next one
        # (Anthropic): counted as a message of its own, which merging can only make smaller.
        own = b.counter.count_message({"role": "user", "content": ""}) if self.anthropic else b.block_overhead
        framing += own
        memo_key, lines = vm.recall_memo
        if memo_key != key or block_ids.intersection(pid for pid, _, _ in lines):
            lines = self._recall(window_from, block_ids, room - framing) if room - framing > 24 else []
            vm.recall_memo = (key, lines)
        kept: list[tuple[str, str, int]] = []
        used = framing
        for line in lines:
            if used + line[2] > room:
                break
            kept.append(line)
            used += line[2]
        if not kept:
            return "", 0, []
        text = _RECALL_HEAD + "".join(line for _, line, _ in kept) + _RECALL_TAIL
        if not b.counter.exact:
            # An estimate rounds each count up, so it is not additive over lines: count the
            # region once as sent (it can only come out lower than the sum).
            used = own + b.counter.count_text(text)
        return text, used, [pid for pid, _, _ in kept]

    def _recall(self, window_from: int, block_ids: set[str], room: int) -> list[tuple[str, str, int]]:
        """The recall region's lines in at most ``room`` tokens, in conversation order:
        (page id, line, tokens) (see the module doc)."""
        vm = self.vm
        window_first = self._first_window_position(window_from)
        region = _Region(self, room, block_ids, window_first)
        # What this turn's memory calls recalled stays in sight for its later rounds; pages
        # recalled on earlier turns share what is left of their part of the room.
        ws_room = int(room * _WORKING_SET_SHARE)
        earlier = reversed(vm.working_set.recalled_before(vm.turn_hint))
        for page, limit in [*((p, room) for p in self._this_turn()), *((p, ws_room) for p in earlier)]:
            if not region.shown(page.page_id):
                region.take(page, limit)
        region.misses = 0
        recalled = self._hits(region) if vm.policy.recall and self.query_text else []
        # What the query leaves free goes to the turns before the window, newest first.
        first = len(vm.order) if window_first is None else window_first
        last = first - 1 if vm.policy.recall else -1
        region.misses = 0
        offer = region.offer
        for j in range(last, max(first - _MAX_RECALL_HITS * 4, 0) - 1, -1):
            if region.full():
                break
            offer(j)
        if recalled:
            vm.counts["prefetched"] += len(recalled)
            vm.log(MutationType.FAULT_IN, recalled[:50], cause="recall region")
        return region.lines()

    def _hits(self, region: _Region) -> list[str]:
        """Take the pages that best match the query, each with its neighbours (the best few
        with one more on each side) while the room lasts; return the ids taken."""
        vm = self.vm
        position, shown = vm.position, region.shown

        def allow(page_id: str) -> bool:
            return page_id in position and not shown(page_id)

        hits = vm.index.search(
            self.query_text, limit=_MAX_RECALL_HITS, allow=allow, fold=False, neighbours=_NEIGHBOUR_SCORE
        )
        narrow, wide = _offsets(vm.policy.recall_neighbours)
        recalled: list[str] = []
        offer, order = region.offer, vm.order
        for n, hit in enumerate(hits):
            if region.full():
                break
            at = position[hit.page_id]
            for offset in wide if n < _WIDE_HITS else narrow:
                if offer(at + offset):
                    recalled.append(order[at + offset])
        return recalled

    def _this_turn(self) -> list[MemoryPage]:
        """Pages this user turn's memory calls recalled or found (``VirtualMemory.turn_recalls``)."""
        vm = self.vm
        key, ids = vm.turn_recalls
        if not key or key != vm.call_key:
            return []
        return [page for page in map(vm.table.get, ids) if page is not None]

    def _first_window_position(self, window_from: int) -> int | None:
        """Position (in ``vm.order``) of the first page of the verbatim window."""
        turns = self.vm.turns
        for i in range(window_from, len(turns)):
            for page_id in turns[i].page_ids:
                at = self.vm.position.get(page_id)
                if at is not None:
                    return at
        return None

    def _line(self, page: MemoryPage, room: int) -> tuple[str, int] | None:
        """``page`` as a recall line (with its newline) and its exact tokens: whole (cached
        per counter, with the page's own tokens), or a snippet around the query when the
        page is long."""
        vm, b = self.vm, self.b
        limit = max(int(room * _LONG_PAGE_SHARE), 64)
        if page.tokens <= limit and page.page_type in WHOLE_TYPES:
            return whole_recall_line(vm.lines.setdefault(b.counter_key, {}), b.counter.count_text, page)
        text = snippet(page.text, self.query_text, limit, self.plan.compressor, b.counter.count_text)
        if not text:
            return None
        unit = recall_line(page, text) + "\n"
        return unit, b.counter.count_text(unit)

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
        reserve, per_call = call_reserve(self.vm, plan.layout) if p.tools else (0, 0)
        p.reserve = reserve
        self.vm.call_room = per_call
        self._fit(p)
        room = b.budget - p.reserve - self._total(p)
        p.recall = self._stable_recall(p.first_turn, set(p.block[2]), room)
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
        if self._total(p) > limit and p.window:
            msgs, counts, ids = p.window[-1]
            before = sum(counts)
            msgs, counts = self._shrink(msgs, counts, self._total(p) - limit)
            p.window[-1] = (msgs, counts, ids)
            p.window_tokens += sum(counts) - before
        if self._total(p) > limit and p.tools:
            p.tools, p.reserve, limit = [], 0, b.budget
            self.vm.call_room = 0
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

    def _turns_before_recall(self, p: _Parts) -> int:
        """How many window turns are sent before the recall region: every one, so that it
        sits right before the incoming message, when that message opens a new turn;
        otherwise all but the latest (never between a tool call and its results). Either
        way it follows the whole cacheable prefix: system, memory block and the window's
        earlier turns, which are append-only between compactions. The one place the
        placement is decided: the report says it (``recall_before``) for those who show
        the request again."""
        if self.opens or not p.window:
            return len(p.window)
        return len(p.window) - 1

    def _recall_at(self, p: _Parts) -> int:
        """Index in the window's messages (``_history``) where the recall region goes."""
        return sum(len(msgs) for msgs, _, _ in p.window[: self._turns_before_recall(p)])

    def _anthropic(self, p: _Parts, history: list[Message]) -> tuple[list[Message], list[dict[str, Any]]]:
        b = self.b
        system: list[dict[str, Any]] = [{"type": "text", "text": b.prompt}] if b.prompt else []
        if p.block[0]:
            block: dict[str, Any] = {"type": "text", "text": p.block[0]}
            if self.vm.policy.anthropic_cache_control:
                block["cache_control"] = {"type": "ephemeral"}
            system.append(block)
        at = self._recall_at(p)
        recall: list[Message] = [{"role": "user", "content": p.recall[0]}] if p.recall[0] else []
        messages = history[:at] + recall + history[at:] + self.incoming
        if messages and messages[0]["role"] != "user":
            messages.insert(0, {"role": "user", "content": _CONTINUED})
        return merge_same_role(messages), system

    def _openai(self, p: _Parts, history: list[Message]) -> list[Message]:
        messages: list[Message] = []
        if self.b.prompt:
            messages.append({"role": "system", "content": self.b.prompt})
        if p.block[0]:
            messages.append({"role": "system", "content": p.block[0]})
        at = self._recall_at(p)
        messages.extend(history[:at])
        if p.recall[0]:
            messages.append({"role": "system", "content": p.recall[0]})
        messages.extend(history[at:])
        messages.extend(self.incoming)
        return messages

    def _render(self, p: _Parts, compactions: int) -> BuiltContext:
        b, vm, plan = self.b, self.vm, self.plan
        history = self._history(p)
        # Our system parts: the prompt message (with reply priming) plus block and recall.
        system_tokens = b.system_tokens - 3 + p.block[1] + (0 if self.anthropic else p.recall[1])
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
        before = self._turns_before_recall(p)
        after_ids = [pid for _, _, ids in p.window[before:] for pid in ids]
        included = p.block[2] + window_ids + p.recall[2]
        stable = prompt_tokens + p.block[1]
        # Built from values computed here, of the fields' types, so constructed without
        # validation (which copies every message, and the few hundred page ids a large
        # budget's recall region lists three times: ~0.2 ms of a build).
        report = ContextReport.model_construct(
            model=b.model,
            provider=b.provider,
            budget=b.budget,
            tokens=tokens,
            exact=b.counter.exact,
            parts=TokensByPart.model_construct(
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
            cacheable_prefix_tokens=stable + p.window_tokens - sum(sum(c) for _, c, _ in p.window[before:]),
            recall_before=after_ids[0] if after_ids else None,
            trimmed_turns=p.trimmed,
            degraded=list(self.degraded),
        )
        vm.keep_snapshot(
            ContextSnapshot.model_construct(
                turn=vm.turn_hint, page_ids=list(included), tokens=tokens, budget=b.budget
            )
        )
        # Pages shown whole: search leaves them out and page_fault does not repeat them as
        # neighbours (a long page cut to a snippet in the recall region is not among them).
        whole = vm.lines.get(b.counter_key, {})
        cut = [pid for pid in p.recall[2] if pid not in whole]
        vm.shown = set(included).difference(cut)
        return BuiltContext.model_construct(messages=messages, system=system, tools=p.tools, report=report)


class _Region:
    """The recall region being filled: the lines taken (page id: line, tokens), the tokens
    they use and the pages in a row that no longer fit.

    It looks at a few hundred pages per build at large budgets, so ``offer`` takes a page
    by its position in ``vm.order`` (``position[order[j]] == j``) and uses a line cached
    whole without reading its page.
    """

    __slots__ = (
        "assembly",
        "block_ids",
        "cache",
        "edge",
        "misses",
        "order",
        "room",
        "taken",
        "used",
        "whole",
    )

    def __init__(self, assembly: Assembly, room: int, block_ids: set[str], window_first: int | None) -> None:
        self.assembly = assembly
        self.room = room
        self.block_ids = block_ids
        self.order = assembly.vm.order
        self.edge = len(self.order) if window_first is None else window_first
        """Pages from this position on are in the verbatim window."""
        self.cache = assembly.vm.lines.setdefault(assembly.b.counter_key, {})
        self.whole = max(int(room * _LONG_PAGE_SHARE), 64)
        """Pages of at most this many tokens are shown whole (``Assembly._line``)."""
        self.taken: dict[str, tuple[str, int]] = {}
        self.used = 0
        self.misses = 0

    def shown(self, page_id: str) -> bool:
        """In the region, the memory block or the window."""
        return (
            page_id in self.taken
            or page_id in self.block_ids
            or self.assembly.vm.position.get(page_id, -1) >= self.edge
        )

    def full(self) -> bool:
        return self.room - self.used < 16 or self.misses >= _GIVE_UP

    def take(self, page: MemoryPage, limit: int) -> bool:
        """Add ``page`` if its line fits ``limit`` (the room, or a smaller share of it)."""
        return self._add(page.page_id, self.assembly._line(page, limit), limit)

    def offer(self, j: int) -> bool:
        """Add the page at position ``j`` of ``vm.order`` unless it is shown or out of
        range; True when it was added."""
        if j < 0 or j >= self.edge:
            return False
        page_id = self.order[j]
        if page_id in self.taken or page_id in self.block_ids:
            return False
        known = self.cache.get(page_id)
        if known is not None and known[2] <= self.whole:
            return self._add(page_id, (known[0], known[1]), self.room)
        page = self.assembly.vm.table.get(page_id)
        return page is not None and self._add(page_id, self.assembly._line(page, self.room), self.room)

    def _add(self, page_id: str, unit: tuple[str, int] | None, limit: int) -> bool:
        if unit is None or self.used + unit[1] > limit:
            self.misses += 1
            return False
        self.taken[page_id] = unit
        self.used += unit[1]
        self.misses = 0
        return True

    def lines(self) -> list[tuple[str, str, int]]:
        """(page id, line, tokens) in conversation order."""
        get, taken = self.assembly.vm.position.get, self.taken
        return [(page_id, *taken[page_id]) for _, page_id in sorted([(get(p, -1), p) for p in taken])]


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
