"""``VirtualMemory``: the per-session memory, kept current as events arrive.

It is attached to a ``SessionState`` (``VirtualMemory.attach``) and lives in
``state.extensions``. Its listener only queues events; the queue is folded into the
page table, the turns and the search index on the next build or tool call, so recording
stays cheap and a build costs the new events plus the budget, not the history.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from sessionware.core.accounting.tokens import EncodingCounter, EstimatingCounter, counter_for_model
from sessionware.core.errors import StorageError
from sessionware.core.memory.enums import MutationType, PageType, StorageTier
from sessionware.core.memory.models import ContextSnapshot, PageMutation, VMMetrics
from sessionware.core.memory.pages import MemoryPage, PageTable
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.memory.search import SearchIndex
from sessionware.core.memory.text import sentences
from sessionware.core.memory.transcript import Turn, event_page
from sessionware.core.memory.working_set import WorkingSet
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.state import SessionState

__all__ = [
    "CHECKPOINT_PAGE",
    "EXTENSION_KEY",
    "KEPT_MUTATIONS",
    "KEPT_SNAPSHOTS",
    "CompactionPlan",
    "Counter",
    "FoldMarks",
    "VirtualMemory",
]

logger = logging.getLogger(__name__)

EXTENSION_KEY = "sessionware.memory"
CHECKPOINT_PAGE = "vm.checkpoint"
KEPT_MUTATIONS = 512
"""Page mutations kept in memory for inspection (the newest; older ones are dropped)."""
KEPT_SNAPSHOTS = 64
"""Turns whose last build's page ids are kept (``context_at_turn``), the newest."""
"""The key of the memory's checkpoint among the session's persisted pages (``checkpoint``)."""
_PAGE_COUNTER_MODEL = "gpt-4o-mini"
# Recalled pages kept hot; each build shows the most recent ones that fit its recall room.
_WORKING_SET_TOKENS = 16_384
# Search weight of a user message made only of questions: it restates what was asked, and
# in a long session the same question asked about other things would outrank the answer.
_QUESTION_WEIGHT = 0.5


# A speaker label opening a message ("Caroline: ...", as chat exports and meeting
# transcripts write them): indexed as its own, lightly weighted field.
_LABEL = re.compile(r"^(?:\[[^\]]{1,40}\] )?((?:[A-Z][\w'.-]*)(?: [A-Z][\w'.-]*){0,2}): ")


def _search_weight(page: MemoryPage) -> float:
    if page.role is not Role.USER:
        return 1.0
    parts = sentences(page.text)
    return _QUESTION_WEIGHT if parts and all(p.endswith("?") for p in parts) else 1.0


def _label(page: MemoryPage) -> tuple[str, str]:
    """(label field, body field) of a page for the search index."""
    if page.tool_name:
        return page.tool_name, page.text
    match = _LABEL.match(page.text)
    if match is None:
        return "", page.text
    return match.group(1), page.text[: match.start(1)] + page.text[match.end() :]


def _plain_text(event: SessionEvent) -> bool:
    """A message whose page text is its content, as the app sent it."""
    return (
        event.type is EventType.MESSAGE
        and isinstance(event.content, str)
        and not event.tool_calls
        and not event.name
        and not event.tool_call_id
        and event.role in (Role.USER, Role.ASSISTANT)
    )


Counter = EncodingCounter | EstimatingCounter


@dataclass(slots=True)
class FoldMarks:
    """How far the memory folded its log, and what a checkpoint (``checkpoint``) needs."""

    folded: int = 0
    """Events of the session's log folded in (a prefix of ``state.events``)."""
    covered: int = 0
    """Events the latest checkpoint this process read or wrote covers."""
    stored: str | None = None
    """The checkpoint read with the persisted pages, until a build takes it."""
    plans: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    """Plan states of a loaded checkpoint by plan key, taken when the plan is first wanted."""
    local_edits: bool = False
    """Pins or claims made in this process: not in the log, so never in a checkpoint
    (another process replaying the log would not have them)."""


class CompactionPlan(Protocol):
    """What the memory itself reads of a compaction plan (``plan.Plan``)."""

    compactions: int
    evicted_pages: int
    tokens_saved: int
    summaries: list[str]

    def invalidate_block(self) -> None: ...


class VirtualMemory:
    """Pages, turns, search index and compaction plans of one session.

    >>> from sessionware.core.store import MemoryBackend, Store
    >>> from sessionware.core.session.registry import registry_for
    >>> state = registry_for(Store(MemoryBackend())).open("demo")
    >>> vm = VirtualMemory.attach(state)
    >>> _ = state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="hi")
    >>> vm.sync()
    >>> [p.page_id for p in vm.table]
    ['msg_1']
    """

    def __init__(self, state: SessionState, policy: ContextPolicy) -> None:  # noqa: PLR0915 - state, each documented
        self.state = state
        self.policy = policy
        self.lock = threading.RLock()
        self.counter: Counter = counter_for_model(_PAGE_COUNTER_MODEL)
        self.table = PageTable()
        self._index = SearchIndex()
        self.turns: list[Turn] = []
        self.plans: OrderedDict[tuple[Any, ...], CompactionPlan] = OrderedDict()
        self.current_plan: CompactionPlan | None = None
        self.order: list[str] = []
        """Transcript and tool pages in conversation order (neighbours of a recalled page)."""
        self.position: dict[str, int] = {}
        self.working_set = WorkingSet(_WORKING_SET_TOKENS)
        self.pinned_ids: list[str] = []
        self.claim_ids: list[str] = []
        self.segment_summary_ids: list[str] = []
        self.recorded_compactions: set[str] = set()
        self.restored_pages: dict[str, MemoryPage] = {}
        """Summary pages read back from the store, by ``<plan tag>/<page id>``."""
        self.pages_loaded = False
        self.calls_by_key: dict[str, int] = {}
        """Memory calls served per incoming message (``call_key``), for the per-turn limit."""
        self.turn_recalls: tuple[str, list[str]] = ("", [])
        """Pages the memory calls of the latest user turn recalled or found (its ``call_key``
        and their ids): the recall region keeps them for the turn's later rounds, through
        the app's own tool calls, so what the model recalled is not lost mid-turn."""
        self.turn_whole: tuple[str, set[str]] = ("", set())
        """Pages the latest user turn's memory calls returned whole (its ``call_key`` and
        their ids): a ``page_fault`` of one of them brings what surrounds it instead of
        repeating it. Not checkpointed: after a restore a fault repeats the page."""
        self.call_key = ""
        """The incoming message the last build was for: its turn and a digest of its words."""
        self.recall_memo: tuple[str, list[tuple[str, str, int]]] = ("", [])
        """The last recall region: its key and its lines (page id, line, tokens), sent again
        by later builds for the same incoming message (``assemble``)."""
        self.call_wanted: deque[int] = deque(maxlen=policy.call_history)
        """Tokens recent memory calls wanted (call and result, before fitting): sizes the reserve."""
        self.call_room = 0
        """Tokens one memory call may use after the last build (its share of the reserve)."""
        self.shown: set[str] = set()
        """Page ids the last build showed whole (search hides them, page_fault does not repeat them)."""
        self.lines: dict[str, dict[str, tuple[str, int, int]]] = {}
        """Per counter and page id: the page's recall line shown whole, the line's exact
        tokens and the page's own (which decide whether it is shown whole)."""
        self.mutations: deque[PageMutation] = deque(maxlen=KEPT_MUTATIONS)
        """The latest page mutations (a bounded log: a long-lived session would grow it per build)."""
        self.snapshots: dict[int, ContextSnapshot] = {}
        """What the last build of each of the latest ``KEPT_SNAPSHOTS`` turns included."""
        self.turn_hint = 0
        """The turn the last build was for; VM tool calls are counted against it."""
        self.counts = dict.fromkeys(("builds", "faults", "refused", "searches", "prefetched", "saved"), 0)
        self.layout_epoch = 0
        """Bumped when pins, claims or restored pages change what every plan must show."""
        self.tool_tokens: dict[tuple[str, bool, bool], int] = {}
        """Tokens of the VM tool schemas per (counter, Anthropic shape, compact)."""
        self.prompt_tokens: dict[tuple[str, bool, str], tuple[int, int]] = {}
        """The builder's system prompt tokens and system framing per (counter, Anthropic shape, prompt)."""
        self.warned_sync_summaries = False
        """Whether a sync build already said that ``summarize_fn`` is left to ``abuild``."""
        self.marks = FoldMarks()
        self._page_of_seq: tuple[list[Turn], dict[int, str]] | None = None
        """Transcript page ids by event seq, for the turns list they were read from."""
        self._pending: deque[SessionEvent] = deque()
        self._needs_reset = False

    # -- attaching ----------------------------------------------------------------------

    @classmethod
    def attach(cls, state: SessionState, policy: ContextPolicy | None = None) -> VirtualMemory:
        """The session's memory, created and subscribed on first use (idempotent).

        A ``policy`` given for an already attached memory replaces its policy.
        """
        with state.lock:
            vm = state.extensions.get(EXTENSION_KEY)
            if isinstance(vm, VirtualMemory):
                if policy is not None and policy is not vm.policy:
                    vm.set_policy(policy)
                return vm
            vm = cls(state, policy or ContextPolicy())
            vm._pending.extend(state.events)
            state.add_listener(vm._on_event)
            state.extensions[EXTENSION_KEY] = vm
            return vm

    @classmethod
    def of(cls, state: SessionState) -> VirtualMemory | None:
        vm = state.extensions.get(EXTENSION_KEY)
        return vm if isinstance(vm, VirtualMemory) else None

    def detach(self) -> None:
        with self.state.lock:
            self.state.remove_listener(self._on_event)
            self.state.extensions.pop(EXTENSION_KEY, None)

    def set_policy(self, policy: ContextPolicy) -> None:
        with self.lock:
            self.policy = policy
            self.call_wanted = deque(self.call_wanted, maxlen=policy.call_history)
            self.plans.clear()
            self.marks.plans.clear()
            self.current_plan = None
            self.layout_epoch += 1

    def _on_event(self, event: SessionEvent) -> None:
        # Runs under the session lock on the recording thread: queue only.
        self._pending.append(event)

    def rewound(self) -> None:
        """The session's log was rewritten in place (another process' events merged in
        before some of this one's): rebuild from it at the next sync."""
        self._needs_reset = True

    # -- the search index ---------------------------------------------------------------

    @property
    def index(self) -> SearchIndex:
        """The search index of the table's pages, in the table's order."""
        return self._index

    def adopt_index(self, index: SearchIndex) -> None:
        """Take the index of a restored table (``checkpoint``): it holds the table's pages
        in the table's order. Callers hold the memory's lock."""
        self._index = index

    def index_in_table_order(self) -> bool:
        """Whether the index holds the table's pages in its order (what a checkpoint
        restores it with): not after a page id was registered twice."""
        return len(self._index) == len(self.table)

    # -- folding events -----------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        """Events recorded or followed since the last sync, not folded yet."""
        return len(self._pending)

    @property
    def settled(self) -> bool:
        """Whether the memory holds exactly the fold of its session's log so far."""
        return not self._pending and not self._needs_reset

    @property
    def stale(self) -> bool:
        """Whether the log was rewritten in place since the last fold (``rewound``)."""
        return self._needs_reset

    def resume_after(self, covered: int) -> None:
        """Fold only the log's events after the first ``covered`` (a checkpoint holds those).
        Callers hold the memory's lock, before anything was folded."""
        with self.state.lock:
            self._pending.clear()
            self._pending.extend(self.state.events[covered:])
            self.marks.folded = covered

    @property
    def current_turn(self) -> int:
        return max(len(self.turns) - 1, 0)

    def sync(self) -> None:
        """Fold queued events into pages, turns and the index."""
        with self.lock:
            if self._needs_reset:
                self._reset()
            while self._pending:
                event = self._pending.popleft()
                self.marks.folded += 1
                if event.type is EventType.BRANCH:
                    self._reset()
                    return
                self._fold(event)

    def _reset(self) -> None:
        """Rebuild from the whole log (after an edited history): rare, O(history)."""
        self._needs_reset = False
        self._pending.clear()
        self.table.clear()
        self._index = SearchIndex()
        self._page_of_seq = None
        self.turns.clear()
        self.plans.clear()
        self.marks.plans.clear()
        self.current_plan = None
        self.pinned_ids.clear()
        self.segment_summary_ids.clear()
        self.calls_by_key.clear()
        self.turn_recalls = ("", [])
        self.turn_whole = ("", set())
        self.recall_memo = ("", [])
        self.call_wanted.clear()
        self.order.clear()
        self.position.clear()
        self.lines.clear()
        self.working_set = WorkingSet(_WORKING_SET_TOKENS)
        from sessionware.core.session.messages import conversation_events

        events = self.state.events
        self.marks.folded = len(events)
        kept = {e.seq for e in conversation_events(events)}
        for event in events:
            if event.type in (EventType.MESSAGE, EventType.TOOL_CALL) and event.seq not in kept:
                continue
            if event.type is not EventType.BRANCH:
                self._fold(event)
        self.layout_epoch += 1

    def text_tokens(self, seqs: list[int]) -> list[int | None]:
        """For each event seq: the tokens (by ``counter``) of that plain text message as its
        page counted them, or None when the memory has no page whose text is the event's
        content (not folded yet, a tool call or result, parts, a name). Managed mode's
        count of what the app asked to send reads it instead of counting a long history
        again."""
        # Without the memory's lock: the store's writer takes it to make a checkpoint right
        # after a build, and waits only briefly. A page folded meanwhile may be missing
        # here; its message is then counted from its recorded fields (the same count).
        found = self._page_of_seq
        turns = self.turns
        if found is None or found[0] is not turns:
            by_seq: dict[int, str] = {}
            for turn in list(turns):
                by_seq.update(zip([e.seq for e in turn.events], list(turn.page_ids), strict=False))
            found = self._page_of_seq = (turns, by_seq)
        page_of = found[1]
        events = self.state.events
        n = len(events)
        tokens_of = self.table.tokens_of
        out: list[int | None] = []
        for seq in seqs:
            page_id = page_of.get(seq)
            if page_id is None or not 0 < seq <= n:
                out.append(None)
                continue
            event = events[seq - 1]
            out.append(tokens_of(page_id) if event.seq == seq and _plain_text(event) else None)
        return out

    def _fold(self, event: SessionEvent) -> None:
        kind = event.type
        if kind in (EventType.MESSAGE, EventType.TOOL_CALL):
            if not event.hidden and event.role is not Role.SYSTEM:
                self._add_transcript(event)
        elif kind is EventType.SUMMARY and event.metadata.get("carried"):
            # The rolling summary an infinite-context segment carries from earlier ones.
            self._add_segment_summary(event)
        elif kind is EventType.PAGE_FAULT:
            self._note_fault(event)
        elif kind is EventType.COMPACTION:
            key = event.metadata.get("compaction_key")
            if isinstance(key, str):
                self.recorded_compactions.add(key)

    def _add_transcript(self, event: SessionEvent) -> None:
        starts_turn = event.type is EventType.MESSAGE and event.role is Role.USER
        if starts_turn or not self.turns:
            self.turns.append(Turn(index=len(self.turns)))
        turn = self.turns[-1]
        page = event_page(event, turn.index, 0, len(self.order) + 1)
        page.tokens = self.counter.count_text(page.text)
        if event.metadata.get("pin"):
            page.pinned = True
            page.importance = 1.0
            self.pinned_ids.append(page.page_id)
            self.layout_epoch += 1
            self.log(MutationType.PIN, [page.page_id], cause="pinned at record")
        self.table.register(page)
        if self._page_of_seq is not None and self._page_of_seq[0] is self.turns:
            self._page_of_seq[1][event.seq] = page.page_id
        label, body = _label(page)
        self._index.add(page.page_id, body, weight=_search_weight(page), label=label)
        self.position[page.page_id] = len(self.order)
        self.order.append(page.page_id)
        turn.add(event, page.page_id)

    def _add_segment_summary(self, event: SessionEvent) -> None:
        page = MemoryPage(
            page_id=str(event.metadata.get("page_id") or f"seg_{event.seq}"),
            session_id=event.session_id,
            page_type=PageType.SUMMARY,
            role=Role.SYSTEM,
            text=event.text,
            seq=event.seq,
            turn=int(event.metadata.get("first_turn", 0)),
            last_turn=int(event.metadata.get("last_turn", 0)),
            tokens=self.counter.count_text(event.text),
            tier=StorageTier.L0,
            importance=1.0,
            provenance=[str(p) for p in event.metadata.get("covers", [])],
        )
        self.table.register(page)
        self._index.add(page.page_id, page.text)
        if page.page_id not in self.segment_summary_ids:
            self.segment_summary_ids.append(page.page_id)
        self.layout_epoch += 1

    def _note_fault(self, event: SessionEvent) -> None:
        turn = int(event.metadata.get("turn", 0))
        key = str(event.metadata.get("call_key") or turn)
        self.calls_by_key[key] = self.calls_by_key.get(key, 0) + 1
        wanted = event.metadata.get("wanted")
        if isinstance(wanted, int):
            self.call_wanted.append(wanted)
        recalled = [str(p) for p in event.metadata.get("recalled", [])]
        for page_id in recalled:
            page = self.table.get(page_id)
            if page is not None:
                self.working_set.add(page, turn)
        if self.turn_recalls[0] != key:
            self.turn_recalls = (key, [])
        if self.turn_whole[0] != key:
            self.turn_whole = (key, set())
        self.turn_whole[1].update(str(p) for p in event.metadata.get("whole", []))
        kept = self.turn_recalls[1]
        for page_id in [*recalled, *(str(p) for p in event.metadata.get("found", []))]:
            if page_id not in kept:
                kept.append(page_id)

    def restore(self, persisted: dict[str, str]) -> None:
        """Take summary pages persisted by an earlier process (LLM-written ones cannot be
        made again from the log); plans are replayed so they use them."""
        with self.lock:
            self.pages_loaded = True
            for key, raw in persisted.items():
                if key == CHECKPOINT_PAGE:
                    self.marks.stored = raw
                    continue
                try:
                    self.restored_pages[key] = MemoryPage.model_validate_json(raw)
                except ValueError:
                    logger.warning("session %s: skipping unreadable persisted page %s", self.state.id, key)
            if self.restored_pages and self.plans:
                self.plans.clear()
                self.current_plan = None

    def pages_wanted(self) -> bool:
        """Whether to read the session's persisted summary pages before planning: once per
        process, and only where they save work. Summaries an LLM wrote cannot be made
        again; extractive ones can, but a process meeting a long stored session would
        compress every evicted chunk of its history again before its first call. A
        session that never compacted has none, and a process that already planned holds
        what it would read (restoring would make it plan again)."""
        if self.pages_loaded:
            return False
        if self.policy.summarize_fn is not None:
            return True
        return bool(self.recorded_compactions) and not self.plans

    def load_pages(self) -> None:
        """Read and restore the persisted pages (sync code; ``aload_pages`` in async code).
        A store that cannot be read leaves the summaries to be made again."""
        try:
            persisted = self.state.store.load_pages(self.state.id)
        except StorageError:
            logger.exception("could not load the persisted pages of session %s", self.state.id)
            self.pages_loaded = True
            return
        self.restore(persisted)

    async def aload_pages(self) -> None:
        try:
            persisted = await self.state.store.aload_pages(self.state.id)
        except StorageError:
            logger.exception("could not load the persisted pages of session %s", self.state.id)
            self.pages_loaded = True
            return
        self.restore(persisted)

    # -- pins and claims ----------------------------------------------------------------

    def pin(self, page_id: str, pinned: bool = True) -> MemoryPage:
        """Pin (or unpin) a page: pinned pages are in every context, verbatim."""
        from sessionware.core.errors import InvalidSessionOperation

        with self.lock:
            self.sync()
            page = self.table.get(page_id)
            if page is None:
                raise InvalidSessionOperation("pin", f"no page {page_id!r}", session_id=self.state.id)
            if page.pinned != pinned:
                self.marks.local_edits = True
                page.pinned = pinned
                if pinned:
                    self.pinned_ids.append(page_id)
                else:
                    self.pinned_ids.remove(page_id)
                self.layout_epoch += 1
                self.log(MutationType.PIN if pinned else MutationType.UNPIN, [page_id], cause="explicit")
            return page

    def add_claim(self, text: str, *, importance: float = 0.8, pinned: bool = False) -> MemoryPage:
        """Keep a fact in the memory block (claims are ranked by importance when space runs out)."""
        with self.lock:
            self.sync()
            self.marks.local_edits = True
            page = MemoryPage(
                page_id=f"claim_{len(self.claim_ids) + 1}",
                session_id=self.state.id,
                page_type=PageType.CLAIM,
                text=text,
                turn=self.current_turn,
                last_turn=self.current_turn,
                tokens=self.counter.count_text(text),
                tier=StorageTier.L0,
                importance=importance,
                pinned=pinned,
            )
            self.table.register(page)
            self._index.add(page.page_id, text)
            self.claim_ids.append(page.page_id)
            for plan in self.plans.values():
                plan.invalidate_block()
            self.log(MutationType.CREATE, [page.page_id], cause="claim")
            return page

    # -- bookkeeping --------------------------------------------------------------------

    def log(
        self, kind: MutationType, page_ids: list[str], *, tier: StorageTier | None = None, cause: str = ""
    ) -> None:
        self.mutations.append(
            PageMutation(
                turn=self.current_turn, mutation_type=kind, page_ids=page_ids, tier_after=tier, cause=cause
            )
        )

    def keep_snapshot(self, snapshot: ContextSnapshot) -> None:
        """Keep what a build included for its turn; the oldest turn's goes past ``KEPT_SNAPSHOTS``."""
        self.snapshots[snapshot.turn] = snapshot
        while len(self.snapshots) > KEPT_SNAPSHOTS:
            del self.snapshots[next(iter(self.snapshots))]

    def context_at_turn(self, turn: int) -> list[str]:
        """Page ids that were in the context built for ``turn`` (the last build of it)."""
        snapshot = self.snapshots.get(turn)
        return list(snapshot.page_ids) if snapshot else []

    def record_event(self, type_: EventType, **fields: Any) -> None:
        """Record a VM event in the session log; bookkeeping never breaks a build."""
        try:
            self.state.record(type_, EventSource.SYSTEM, **fields)
        except Exception:  # a full or failing log must not fail the app's call
            logger.exception("could not record %s for session %s", type_.value, self.state.id)

    def metrics(self) -> VMMetrics:
        with self.lock:
            self.sync()
            plan = self.current_plan
            return VMMetrics(
                turns=len(self.turns),
                pages=len(self.table),
                pages_by_tier=self.table.count_by_tier(),
                builds=self.counts["builds"],
                compactions=plan.compactions if plan else 0,
                pages_evicted=plan.evicted_pages if plan else 0,
                summaries=len(plan.summaries) if plan else 0,
                faults=self.counts["faults"],
                faults_refused=self.counts["refused"],
                searches=self.counts["searches"],
                prefetched_pages=self.counts["prefetched"],
                working_set_pages=len(self.working_set.page_ids()),
                working_set_evictions=self.working_set.evictions,
                tokens_saved_by_compression=plan.tokens_saved if plan else 0,
            )
