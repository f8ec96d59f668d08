"""Checkpoints of a session's memory: a process that meets a long stored session starts
from one instead of replaying the whole log.

A checkpoint is the memory's derived state (pages, turns, search index, working set, the
compaction plans) after folding the first *n* events of the log, stored among the
session's persisted pages (``CHECKPOINT_PAGE``). A build writes one when at least
``EVERY`` events were folded since the last one; a process whose memory has folded
nothing yet reads it with the summary pages (one read), restores it and folds only the
events after it.

A checkpoint is used only when everything it was made from is what this process has:

* its format (``FORMAT``, raised whenever what a fold makes changes) and package version;
* the session, and the log it covers: the digest of the first *n* events' ids and
  sequence numbers must be the digest of this process' first *n* events (another
  writer's events ordered otherwise, an edited or shortened log: not the same log);
* its own bytes (a digest of the body in the header: a cut or damaged write);
* a sample of its pages, counted again here (another tokenizer gives other counts);
* for each plan, the same policy and layout (its tag), and a window that counts the
  tokens it counted.

Anything else replays the log (logged as a warning), as a process without a checkpoint
does. Writers never coordinate: each checkpoint is whole and self-checked, so two
processes writing at once leave one of two valid ones, and an older one overwriting a
newer one costs a longer catch-up, never a wrong context. Pins and claims made through
the API in this process are not in the log, so such a memory writes no checkpoint.

>>> from sessionware.core.store import MemoryBackend, Store
>>> from sessionware.core.session.registry import registry_for
>>> from sessionware.core.memory.vm import VirtualMemory
>>> from sessionware.core.session.enums import EventSource, EventType, Role
>>> state = registry_for(Store(MemoryBackend())).open("doc-checkpoint")
>>> _ = state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="hi")
>>> vm = VirtualMemory.attach(state)
>>> vm.sync()
>>> fresh = VirtualMemory(state, vm.policy)
>>> restore(fresh, dump(vm) or "")
1
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sessionware._version import __version__
from sessionware.core.gc_pause import paused
from sessionware.core.memory import search_state
from sessionware.core.memory.enums import PageType, Provider, StorageTier
from sessionware.core.memory.pages import DeferredPage, MemoryPage, PageTable
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.memory.search import SearchIndex
from sessionware.core.memory.transcript import Turn, event_page
from sessionware.core.memory.vm import CHECKPOINT_PAGE, VirtualMemory
from sessionware.core.memory.working_set import WorkingSet
from sessionware.core.session.models import SessionEvent
from sessionware.core.store.base import PutPages

__all__ = [
    "EVERY",
    "FORMAT",
    "MIN_EVENTS",
    "Snapshot",
    "dump",
    "restore",
    "snapshot",
    "take",
    "wanted",
    "write_due",
]

logger = logging.getLogger(__name__)

FORMAT = 3
"""Raised whenever folding events makes other pages, turns or index entries."""
MIN_EVENTS = 256
"""Logs shorter than this replay in a few milliseconds: no checkpoint is read or written."""
EVERY = 256
"""Events folded since the last checkpoint before a build writes the next one: a fresh
process folds at most about this many after loading one."""
_SAMPLE = 8
"""Pages counted again when a checkpoint is loaded."""


class CheckpointMismatch(ValueError):
    """A checkpoint that is not this process' fold of this log (why, in the message)."""


# -- reading ---------------------------------------------------------------------------


def wanted(vm: VirtualMemory) -> bool:
    """Whether to read the stored pages (with the checkpoint) before the first fold."""
    return vm.marks.folded == 0 and not vm.pages_loaded and vm.pending_events >= MIN_EVENTS


def take(vm: VirtualMemory) -> None:
    """Restore the checkpoint read with the pages, if any and if it fits (else replay).
    Callers hold the memory's lock."""
    raw, vm.marks.stored = vm.marks.stored, None
    if raw is None or vm.marks.folded:
        return
    try:
        restore(vm, raw)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        logger.warning(
            "session %s: replaying the log, its memory checkpoint is unusable: %s", vm.state.id, exc
        )


def restore(vm: VirtualMemory, raw: str) -> int:
    """Load ``raw`` into ``vm`` (which has folded nothing) and return the events it covers;
    ``vm`` then folds only the later ones. Raises ``ValueError`` (nothing changed) when the
    checkpoint does not fit (see the module doc)."""
    head_line, _, body = raw.partition("\n")
    head = json.loads(head_line)
    if head.get("format") != FORMAT or head.get("version") != __version__:
        raise CheckpointMismatch(f"format {head.get('format')} of version {head.get('version')}")
    if head.get("session") != vm.state.id:
        raise CheckpointMismatch(f"of session {head.get('session')!r}")
    if _digest(body) != head.get("body"):
        raise CheckpointMismatch("its body does not match its digest")
    covered = int(head["events"])
    with vm.state.lock:
        events = list(vm.state.events)
    if covered > len(events) or _log_digest(events[:covered]) != head.get("log"):
        raise CheckpointMismatch(f"it covers another log than this process' first {covered} events")
    with paused():  # tens of thousands of pages and rows at once (see gc_pause)
        parts = _Restored(vm, json.loads(body), events)
    parts.apply()
    vm.resume_after(covered)
    vm.marks.covered = covered
    logger.debug("session %s: memory restored from a checkpoint of %d events", vm.state.id, covered)
    return covered


class _Restored:
    """A checkpoint's state, built and checked apart from the memory, then put in at once.

    Transcript pages stay deferred (``_EventPage``): made from their event when read; the
    search index's rows are parsed when first read (``search_state``).
    """

    def __init__(self, vm: VirtualMemory, data: dict[str, Any], events: Sequence[SessionEvent]) -> None:
        self.vm = vm
        rows = data["transcript"]
        refs, turn_of, tokens = rows["events"], rows["turns"], rows["tokens"]
        n = len(refs)
        if not n == len(turn_of) == len(tokens):
            raise CheckpointMismatch("transcript columns of different lengths")
        tiers = [StorageTier.L0] * n
        for first, count, value in rows["tiers"]:
            tiers[first : first + count] = [StorageTier(value)] * count
        if len(tiers) != n:
            raise CheckpointMismatch("tier runs beyond the transcript")
        extra = {int(k): v for k, v in rows["extra"].items()}
        ids = [f"msg_{k}" for k in range(1, n + 1)]
        evs = [events[ref] for ref in refs]
        deferred = [
            _EventPage(evs[k], ids[k], turn_of[k], tokens[k], k + 1, tier=tiers[k], extra=extra.get(k))
            for k in range(n)
        ]
        # Turns are runs of pages: turn numbers start at 0 and go up by one.
        starts = [k for k in range(n) if k == 0 or turn_of[k] != turn_of[k - 1]]
        if any(turn_of[k] != t for t, k in enumerate(starts)) or (n and turn_of[-1] != len(starts) - 1):
            raise CheckpointMismatch("pages out of turn order")
        bounds = zip(starts, [*starts[1:], n], strict=True)
        self.turns = [Turn(index=t, events=evs[a:b], page_ids=ids[a:b]) for t, (a, b) in enumerate(bounds)]
        self.order = ids
        self.table = PageTable()
        others = {int(k): MemoryPage.model_validate(v) for k, v in data["others"].items()}
        rest = iter(deferred)
        entries: list[tuple[str, MemoryPage | DeferredPage]] = []
        for position in range(n + len(others)):
            page = others.get(position)
            if page is not None:
                entries.append((page.page_id, page))
            else:
                row = next(rest)
                entries.append((row.page_id, row))
        self.table.load(entries)
        ids_in_order = [page_id for page_id, _ in entries]
        self.index = SearchIndex.from_columns(ids_in_order, search_state.decode(data["index"], len(entries)))
        self._check_counts()
        self.working_set = WorkingSet(vm.working_set.capacity_tokens)
        recalled, recalled_at, evicted_at, evictions = data["working_set"]
        pages = [self.table.get(str(page_id)) for page_id in recalled]
        if None in pages:
            raise CheckpointMismatch("a recalled page is not in its table")
        self.working_set.restore([p for p in pages if p is not None], recalled_at, evicted_at, int(evictions))
        self.misc = data["memory"]
        self.plans: dict[tuple[Any, ...], dict[str, Any]] = {}
        if data["policy"] == _policy_digest(vm.policy):
            self.plans = {_plan_key(key): plan for key, plan in data["plans"]}

    def _check_counts(self) -> None:
        """Count a few pages again: another tokenizer or text rendering gives other counts."""
        ids = self.order
        step = max(1, len(ids) // _SAMPLE)
        counter = self.vm.counter
        for page_id in ids[::step][:_SAMPLE] + ids[-1:]:
            page = self.table.get(page_id)
            if page is not None and counter.count_text(page.text) != page.tokens:
                raise CheckpointMismatch(f"page {page.page_id} counts {page.tokens} tokens there, not here")

    def apply(self) -> None:
        vm, misc = self.vm, self.misc
        vm.table = self.table
        vm.adopt_index(self.index)
        vm.turns = self.turns
        vm.order = self.order
        vm.position = {page_id: i for i, page_id in enumerate(self.order)}
        vm.working_set = self.working_set
        vm.pinned_ids = [str(p) for p in misc["pinned"]]
        vm.segment_summary_ids = [str(p) for p in misc["segments"]]
        vm.recorded_compactions = {str(k) for k in misc["compactions"]}
        vm.calls_by_key = {str(k): int(v) for k, v in misc["calls"].items()}
        key, ids = misc["turn_recalls"]
        vm.turn_recalls = (str(key), [str(p) for p in ids])
        vm.call_wanted.clear()
        vm.call_wanted.extend(int(w) for w in misc["wanted"])
        vm.layout_epoch = int(misc["layout_epoch"])
        vm.plans.clear()
        vm.current_plan = None
        vm.marks.plans = self.plans


class _EventPage:
    """A transcript page of a checkpoint, made from its event when first read."""

    __slots__ = ("event", "extra", "ordinal", "page_id", "tier", "tokens", "turn")

    def __init__(
        self,
        event: SessionEvent,
        page_id: str,
        turn: int,
        tokens: int,
        ordinal: int,
        *,
        tier: StorageTier,
        extra: Any,
    ) -> None:
        self.event = event
        self.page_id = page_id
        self.turn = turn
        self.tokens = tokens
        self.ordinal = ordinal
        self.tier = tier
        self.extra = extra
        """[pinned, importance, access count, last access turn] when any differs from a new page's."""

    def page(self) -> MemoryPage:
        page = event_page(self.event, int(self.turn), int(self.tokens), self.ordinal)
        page.tier = self.tier
        if self.extra is not None:
            pinned, importance, accessed, last_access = self.extra
            page.pinned = bool(pinned)
            page.importance = float(importance)
            page.access_count = int(accessed)
            page.last_access_turn = int(last_access)
        return page


# -- writing ---------------------------------------------------------------------------


def write_due(vm: VirtualMemory) -> bool:
    """Whether a checkpoint is worth writing now (callers hold the memory's lock)."""
    return (
        vm.settled
        and not vm.marks.local_edits
        and vm.marks.folded >= MIN_EVENTS
        and vm.marks.folded - vm.marks.covered >= EVERY
    )


def write(vm: VirtualMemory) -> None:
    """Queue the memory's checkpoint for the store. It is made when the store's writer
    takes it (``_Written``): off the app's call, and before a ``flush`` returns.
    Callers hold the memory's lock, with the memory settled.

    Bookkeeping: a memory that cannot be written is logged, and the next build does not
    try again before ``EVERY`` more events."""
    with vm.state.lock:
        events = list(vm.state.events)
    if len(events) != vm.marks.folded or not vm.settled:
        return  # recorded meanwhile: a later build writes it
    before, vm.marks.covered = vm.marks.covered, vm.marks.folded
    try:
        vm.state.store.submit([PutPages(vm.state.id, _Written(vm, events, before))])
    except Exception:  # a checkpoint is an optimisation: the app's call goes on without it
        logger.exception("could not write the memory checkpoint of session %s", vm.state.id)


class _Written(Mapping[str, str]):
    """The pages of a checkpoint write: the checkpoint, made on first read.

    Made by the store's writer thread (or in the call, for stores that write inline): a
    ``snapshot`` under the memory's lock, its text after the lock is released, from the log
    as the build that queued it saw it (``events``): what
    was recorded since is not folded yet and does not matter. A lock held elsewhere for
    longer than ``_WAIT`` (a build waiting on this very writer), or a memory that folded
    more since while the session has records waiting, skips this checkpoint, and a later
    build queues one again.
    """

    def __init__(self, vm: VirtualMemory, events: list[SessionEvent], covered_before: int) -> None:
        self.vm = vm
        self.events = events
        self.covered_before = covered_before
        self._made: dict[str, str] | None = None

    def _pages(self) -> dict[str, str]:
        if self._made is None:
            vm, raw, taken = self.vm, None, None
            if vm.lock.acquire(timeout=_WAIT):
                try:
                    if vm.marks.folded == len(self.events):
                        taken = snapshot(vm, events=self.events)
                    elif not vm.state.unsettled:  # a later build folded more: its log, if settled
                        taken = snapshot(vm, wait=_WAIT)
                except Exception:  # bookkeeping: the writer goes on with the other writes
                    logger.exception("could not make the memory checkpoint of session %s", vm.state.id)
                finally:
                    vm.lock.release()
            try:
                raw = taken.text() if taken is not None else None  # without the lock: builds go on
            except Exception:
                logger.exception("could not make the memory checkpoint of session %s", vm.state.id)
            if raw is None and vm.marks.covered > self.covered_before:
                vm.marks.covered = self.covered_before
            self._made = {CHECKPOINT_PAGE: raw} if raw is not None else {}
            self.events = []
        return self._made

    def __getitem__(self, key: str) -> str:
        return self._pages()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pages())

    def __len__(self) -> int:
        return len(self._pages())


_WAIT = 0.05
"""Seconds the writer waits for a memory's lock before it skips a checkpoint."""


def dump(
    vm: VirtualMemory, *, events: list[SessionEvent] | None = None, wait: float | None = None
) -> str | None:
    """The checkpoint of ``vm`` as text (``None`` when its state is not the log's fold:
    events not folded yet, local pins or claims). Callers hold the memory's lock.

    ``events``: the log the memory folded (its first ``folded`` events), when the caller
    took it earlier; otherwise the session's log is read now, waiting ``wait`` seconds at
    most for the session's lock (None: as long as it takes)."""
    taken = snapshot(vm, events=events, wait=wait)
    return taken.text() if taken is not None else None


def snapshot(
    vm: VirtualMemory, *, events: list[SessionEvent] | None = None, wait: float | None = None
) -> Snapshot | None:
    """What ``dump`` writes, copied from ``vm`` (``None`` as for ``dump``); made into text
    by ``Snapshot.text`` without the memory's lock. Callers hold the memory's lock: this
    is the part of a checkpoint that needs it (the page columns, copies of the small state,
    the search index's containers), a fraction of making the text."""
    if vm.marks.local_edits or not vm.index_in_table_order() or vm.stale:
        return None
    if events is None:
        lock = vm.state.lock
        if not lock.acquire(timeout=-1 if wait is None else wait):
            return None
        try:
            if not vm.settled or vm.state.unsettled:
                return None
            events = list(vm.state.events)
        finally:
            lock.release()
    if len(events) != vm.marks.folded:
        return None
    with paused():  # tens of thousands of rows copied at once (see gc_pause)
        return _snapshot(vm, events)


def _snapshot(vm: VirtualMemory, events: list[SessionEvent]) -> Snapshot | None:
    pages = _pages(vm, events)
    if pages is None:
        return None
    plans = []
    for key, plan in vm.plans.items():
        exported = getattr(plan, "export", None)
        state = exported() if callable(exported) else None
        if state is not None:
            plans.append([[key[0].value, *key[1:]], state])
    recalled, recalled_at, evicted_at, evictions = vm.working_set.export()
    rest = {
        # Copies: the memory's own containers change once the lock is released.
        "working_set": [list(recalled), dict(recalled_at), dict(evicted_at), evictions],
        "memory": {
            "pinned": list(vm.pinned_ids),
            "segments": list(vm.segment_summary_ids),
            "compactions": sorted(vm.recorded_compactions),
            "calls": dict(vm.calls_by_key),
            "turn_recalls": [vm.turn_recalls[0], list(vm.turn_recalls[1])],
            "wanted": list(vm.call_wanted),
            "layout_epoch": vm.layout_epoch,
        },
        "policy": _policy_digest(vm.policy),
        "plans": plans,
    }
    return Snapshot(vm.state.id, events, {**pages, **rest}, search_state.snapshot(vm.index.columns()))


class Snapshot:
    """A checkpoint's content, independent of the memory it was taken from (which goes on
    folding): the log it covers, the page columns and the small state (copies), the search
    index's rows as of the snapshot."""

    __slots__ = ("data", "events", "index", "session")

    def __init__(
        self,
        session: str,
        events: list[SessionEvent],
        data: dict[str, Any],
        index: search_state.IndexSnapshot,
    ) -> None:
        self.session = session
        self.events = events
        self.data = data
        self.index = index

    def text(self) -> str:
        """The checkpoint: a header line (format, version, session, the log it covers and
        digests) and the body, one JSON object."""
        with paused():
            index = search_state.encode(self.index)
        body = json.dumps({**self.data, "index": index}, separators=(",", ":"), ensure_ascii=False)
        head = {
            "format": FORMAT,
            "version": __version__,
            "session": self.session,
            "events": len(self.events),
            "log": _log_digest(self.events),
            "body": _digest(body),
        }
        return json.dumps(head) + "\n" + body


def _pages(vm: VirtualMemory, events: list[SessionEvent]) -> dict[str, Any] | None:
    """The table as columns of its transcript pages and its other pages by position (None:
    a table that is not the fold's)."""
    # Transcript pages are msg_1..msg_n in turn order: the k-th page of the turns is msg_<k+1>.
    flat_ids = [page_id for turn in vm.turns for page_id in turn.page_ids]
    flat_events = [event for turn in vm.turns for event in turn.events]
    if events and events[0].seq == 1 and events[-1].seq == len(events):
        index_of = None  # seqs number the log from 1 without gaps: an event's index is its seq - 1
    else:
        index_of = {id(event): i for i, event in enumerate(events)}
    n = len(flat_ids)
    refs: list[int] = []
    turn_of: list[int] = []
    tokens: list[int] = []
    tiers: list[list[Any]] = []
    extra: dict[int, list[Any]] = {}
    others: dict[int, Any] = {}
    l0, deferred, not_others = StorageTier.L0, _EventPage, (PageType.TRANSCRIPT, PageType.ARTIFACT)
    run_tier, run_end = l0, -1  # the last run of tiers: its tier and the page after it
    for position, (page_id, entry) in enumerate(vm.table.entries()):
        k = len(refs)
        if k >= n or page_id != flat_ids[k]:
            page = entry if isinstance(entry, MemoryPage) else vm.table.get(page_id)
            if page is None or page.page_type in not_others:
                return None  # not the fold's numbering: nothing a checkpoint can restore
            others[position] = page.model_dump(mode="json")
            continue
        if page_id != f"msg_{k + 1}":
            return None
        event = flat_events[k]
        ref = index_of[id(event)] if index_of is not None else event.seq - 1
        if events[ref] is not event:
            return None
        refs.append(ref)
        if entry.__class__ is deferred:
            turn_of.append(entry.turn)
            tokens.append(entry.tokens)
            if entry.extra is not None:
                extra[k] = entry.extra
        elif isinstance(entry, MemoryPage):
            turn_of.append(entry.turn)
            tokens.append(entry.tokens)
            if entry.pinned or entry.importance != _IMPORTANCE or entry.access_count:
                extra[k] = [entry.pinned, entry.importance, entry.access_count, entry.last_access_turn]
        else:
            return None
        tier = entry.tier
        if tier is not l0:
            if tier is run_tier and run_end == k:
                tiers[-1][1] += 1
            else:
                tiers.append([k, 1, tier.value])
                run_tier = tier
            run_end = k + 1
    return {
        "transcript": {"events": refs, "turns": turn_of, "tokens": tokens, "tiers": tiers, "extra": extra},
        "others": others,
    }


_IMPORTANCE = MemoryPage.model_fields["importance"].default
"""A new transcript page's importance."""


# -- digests ---------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _log_digest(events: Sequence[SessionEvent]) -> str:
    """The identity of a log prefix: its events' ids and sequence numbers, in order."""
    return _digest("\n".join(f"{e.id} {e.seq}" for e in events))


def _policy_digest(policy: ContextPolicy) -> str:
    """What of the policy a plan depends on (an LLM summariser or not, not which one)."""
    return _digest(policy.model_dump_json() + ("+llm" if policy.summarize_fn is not None else ""))


def _plan_key(key: list[Any]) -> tuple[Any, ...]:
    return (Provider(key[0]), *key[1:])
