"""One session as the UI shows it: header, a page of the timeline, per-call series.

A ``LoadedSession`` keeps a session's events in memory once read and catches up with
what was appended since (``load_events(after_seq=...)``), so paging through a 10,000-event
session reads the store once, and the series behind the charts are computed once per
change. Everything leaves here as plain JSON-ready values; texts are cut to
``TEXT_LIMIT`` characters in pages (the full event is one request away).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sessionware.cli.timeline import superseded_by
from sessionware.core.accounting.caching import CacheFigures, CacheTally, cache_saving
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store.store import Store

__all__ = ["TEXT_LIMIT", "LoadedSession", "SessionViews", "event_kind", "is_call"]

TEXT_LIMIT = 2_000
_KEEP_SESSIONS = 4


def is_call(event: SessionEvent) -> bool:
    """Whether ``event`` records a provider call (the rule ``SessionTotals.fold`` counts by)."""
    return event.usage is not None or (event.model is not None and event.source is EventSource.LLM)


def event_kind(event: SessionEvent) -> str:
    """The timeline's name for what ``event`` is, which also picks its colour."""
    if event.type is EventType.MESSAGE:
        return (event.role or Role.USER).value
    if event.type is EventType.LLM_CALL:
        return "error" if event.error is not None else ("hidden" if event.hidden else "call")
    return event.type.value


def _clip(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if limit <= 0 or len(text) <= limit else (text[:limit], True)


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _content_text(event: SessionEvent) -> str:
    content = event.content
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(str(p["text"]) if "text" in p else f"[{p.get('type', 'part')}]" for p in content)


_SERIES = (
    "seq",
    "time",
    "model",
    "input",
    "output",
    "cached",
    "written",
    "cost",
    "latency",
    "ttft",
    "app_input",
    "hidden",
    "error",
)


@dataclass(frozen=True, slots=True)
class _Digest:
    """What the header and the charts show of a session's events, made in one pass."""

    counts: dict[str, int]
    """Events by ``event_kind``."""
    cache: CacheFigures
    managed: dict[str, int] | None
    """Managed calls' app vs wire vs cached input tokens (None: no managed call)."""
    series: dict[str, Any]
    """Per-call columns for the charts, in call order."""
    superseded: dict[int, int]

    @classmethod
    def of(cls, events: list[SessionEvent], prices: PriceBook) -> _Digest:
        counts: dict[str, int] = {}
        tally = CacheTally(prices)
        cols: dict[str, list[Any]] = {k: [] for k in _SERIES}
        models: dict[str, int] = {}
        managed = app = wire = cached = 0
        for event in events:
            kind = event_kind(event)
            counts[kind] = counts.get(kind, 0) + 1
            usage = event.usage
            if usage is not None:
                tally.add(event.model, usage, event.cost, event.provider)
                if event.app_input_tokens is not None:
                    managed += 1
                    app += event.app_input_tokens
                    wire += usage.input_tokens
                    cached += usage.cache_read_tokens
            elif event.model is None or event.source is not EventSource.LLM:
                continue  # not a call (the rule of ``is_call``)
            cols["seq"].append(event.seq)
            cols["time"].append(event.timestamp.timestamp())
            cols["model"].append(models.setdefault(event.model or "", len(models)))
            cols["input"].append(usage.input_tokens if usage else 0)
            cols["output"].append(usage.output_tokens if usage else 0)
            cols["cached"].append(usage.cache_read_tokens if usage else 0)
            cols["written"].append(usage.cache_write_tokens if usage else 0)
            cols["cost"].append(float(event.cost) if event.cost is not None else None)
            cols["latency"].append(event.latency_ms)
            cols["ttft"].append(event.ttft_ms)
            cols["app_input"].append(event.app_input_tokens)
            cols["hidden"].append(1 if event.hidden else 0)
            cols["error"].append(1 if event.error is not None else 0)
        sums = {"calls": managed, "app_input_tokens": app, "wire_input_tokens": wire, "cached_tokens": cached}
        return cls(
            counts=counts,
            cache=tally.figures(),
            managed=sums if managed else None,
            series={"models": list(models), "calls": len(cols["seq"]), **cols},
            superseded=superseded_by(events),
        )


class LoadedSession:
    """A session's header and events, caught up with the store on every use."""

    def __init__(self, store: Store, session_id: str, prices: PriceBook) -> None:
        self.store = store
        self.id = session_id
        self.prices = prices
        self.info: SessionInfo = store.load_info(session_id)
        self.events: list[SessionEvent] = []
        self.lock = threading.Lock()
        self._derived: dict[str, Any] = {}
        self._catch_up()

    def _catch_up(self) -> None:
        after = self.events[-1].seq if self.events else 0
        fresh = self.store.load_events(self.id, after)
        if fresh:
            self.events.extend(fresh)
            self._derived = {}

    def refresh(self) -> None:
        """Read the header again and the events appended since the last read."""
        with self.lock:
            self.info = self.store.load_info(self.id)
            if self.info.last_seq != (self.events[-1].seq if self.events else 0):
                self._catch_up()

    def _memo(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def superseded(self) -> dict[int, int]:
        return self._digest().superseded

    def _digest(self) -> _Digest:
        found: _Digest = self._memo("digest", lambda: _Digest.of(self.events, self.prices))
        return found

    def index_of(self, seq: int) -> int | None:
        """Position of the event numbered ``seq`` (numbered from 1, maybe with gaps), or None."""
        events = self.events
        guess = seq - 1
        if 0 <= guess < len(events) and events[guess].seq == seq:
            return guess
        lo, hi = 0, len(events)
        while lo < hi:
            mid = (lo + hi) // 2
            if events[mid].seq < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(events) and events[lo].seq == seq else None

    # -- what the pages ask for ------------------------------------------------------------

    def header(self, children: list[str]) -> dict[str, Any]:
        info = self.info
        t = info.totals
        digest = self._digest()
        return {
            "id": info.id,
            "parent_id": info.parent_id,
            "children": children,
            "metadata": info.metadata,
            "system_prompt": info.system_prompt,
            "created_at": info.created_at.isoformat(),
            "updated_at": info.updated_at.isoformat(),
            "runs": [r.model_dump(mode="json") for r in info.runs],
            "events": len(self.events),
            "last_seq": self.events[-1].seq if self.events else 0,
            "kinds": dict(digest.counts),
            "totals": {
                "calls": t.llm_calls,
                "errors": t.errors,
                "tool_calls": t.tool_calls,
                "page_faults": t.page_faults,
                "input_tokens": t.usage.input_tokens,
                "output_tokens": t.usage.output_tokens,
                "cache_read_tokens": t.usage.cache_read_tokens,
                "cache_write_tokens": t.usage.cache_write_tokens,
                "reasoning_tokens": t.usage.reasoning_tokens,
                "cost": str(t.cost),
                "unpriced_calls": t.unpriced_calls,
                "hidden_input_tokens": t.hidden_usage.input_tokens,
                "hidden_output_tokens": t.hidden_usage.output_tokens,
                "hidden_cost": str(t.hidden_cost),
                "models": t.models,
            },
            "cache": digest.cache.model_dump(mode="json"),
            "managed": None if digest.managed is None else dict(digest.managed),
        }

    def page(self, offset: int, limit: int, kinds: frozenset[str] | None = None) -> dict[str, Any]:
        """``limit`` events from ``offset`` (among those of ``kinds`` when given)."""
        replaced = self.superseded()
        if kinds:
            picked = self._memo(f"kinds:{','.join(sorted(kinds))}", lambda: self._of_kinds(kinds))
            chosen = [self.events[i] for i in picked[offset : offset + limit]]
            matched = len(picked)
        else:
            chosen = self.events[offset : offset + limit]
            matched = len(self.events)
        return {
            "offset": offset,
            "limit": limit,
            "matched": matched,
            "items": [self.item(e, replaced) for e in chosen],
        }

    def _of_kinds(self, kinds: frozenset[str]) -> list[int]:
        return [i for i, e in enumerate(self.events) if event_kind(e) in kinds]

    def item(self, event: SessionEvent, replaced: dict[int, int], limit: int = TEXT_LIMIT) -> dict[str, Any]:
        """One event as the timeline draws it."""
        text, clipped = _clip(_content_text(event), limit)
        item: dict[str, Any] = {
            "seq": event.seq,
            "time": event.timestamp.isoformat(),
            "type": event.type.value,
            "kind": event_kind(event),
            "role": event.role.value if event.role else None,
            "text": text,
            "clipped": clipped,
        }
        if event.name:
            item["name"] = event.name
        if event.tool_calls:
            item["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in event.tool_calls
            ]
        if event.tool_call_id:
            item["tool_call_id"] = event.tool_call_id
        if event.tool_name is not None:
            result, result_clipped = _clip(_json_text(event.tool_result), limit)
            item["tool"] = {
                "name": event.tool_name,
                "arguments": _json_text(event.tool_arguments),
                "result": result,
                "clipped": result_clipped,
            }
        if event.error is not None:
            item["error"] = event.error.model_dump(mode="json")
        if event.branch_of is not None:
            item["branch_of"] = event.branch_of
        if event.seq in replaced:
            item["superseded_by"] = replaced[event.seq]
        if event.hidden:
            item["hidden"] = True
        if is_call(event):
            item["call"] = self._call(event)
        meta = {k: v for k, v in event.metadata.items() if k != "managed"}
        if meta:
            item["metadata"] = meta
        if "managed" in event.metadata:
            item["managed"] = event.metadata["managed"]
        return item

    def _call(self, event: SessionEvent) -> dict[str, Any]:
        usage = event.usage
        saved = cache_saving(self.prices, event.model, usage, event.cost, event.provider) if usage else None
        return {
            "model": event.model,
            "provider": event.provider,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cache_read_tokens": usage.cache_read_tokens if usage else None,
            "cache_write_tokens": usage.cache_write_tokens if usage else None,
            "reasoning_tokens": usage.reasoning_tokens if usage else None,
            "token_source": usage.source.value if usage else None,
            "cost": None if event.cost is None else str(event.cost),
            "cache_saved_cost": None if saved is None or saved == 0 else str(saved),
            "latency_ms": event.latency_ms,
            "ttft_ms": event.ttft_ms,
            "finish_reason": event.finish_reason,
            "app_input_tokens": event.app_input_tokens,
        }

    def full_event(self, seq: int) -> dict[str, Any] | None:
        at = self.index_of(seq)
        return None if at is None else self.item(self.events[at], self.superseded(), limit=0)

    def series(self) -> dict[str, Any]:
        """Per-call columns for the charts, in call order."""
        return dict(self._digest().series)

    def total_cost(self) -> Decimal:
        return self.info.totals.cost


class SessionViews:
    """The few sessions open in the UI, kept loaded (least recently used dropped first)."""

    def __init__(self, store: Store, prices: PriceBook, keep: int = _KEEP_SESSIONS) -> None:
        self._store = store
        self._prices = prices
        self._keep = keep
        self._lock = threading.Lock()
        self._open: OrderedDict[str, LoadedSession] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, session_id: str) -> LoadedSession:
        """The session, caught up with the store (read once however many requests ask at once)."""
        with self._lock:
            found = self._open.get(session_id)
            if found is not None:
                self._open.move_to_end(session_id)
            loading = self._loading.setdefault(session_id, threading.Lock()) if found is None else None
        if found is not None:
            found.refresh()
            return found
        assert loading is not None
        with loading:
            with self._lock:
                found = self._open.get(session_id)
            if found is not None:
                return found  # another request loaded it while this one waited
            found = LoadedSession(self._store, session_id, self._prices)
            with self._lock:
                self._open[session_id] = found
                self._loading.pop(session_id, None)
                while len(self._open) > self._keep:
                    self._open.popitem(last=False)
        return found
