"""``sessionware show``: a session's events as a timeline a person can read.

Every event is shown, in ``seq`` order, including those an edited history superseded
(marked, with the branch that replaced them). Provider calls get a second line with
model, tokens (cached and reasoning parts), cost, latency and finish reason.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from typing import Any

from sessionware.cli.cache import format_saved, format_share
from sessionware.cli.render import (
    Column,
    clip,
    format_cost,
    format_count,
    format_time,
    iso_utc,
    plain_decimal,
)
from sessionware.core.accounting.caching import CacheFigures
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.models import Session, SessionEvent, SessionTotals
from sessionware.core.session.stats import known_cost

__all__ = ["PLAIN_COLUMNS", "plain_rows", "render_timeline", "superseded_by"]

_NBSP = "\u00a0"

PLAIN_COLUMNS = [
    Column("seq", numeric=True),
    Column("time"),
    Column("type"),
    Column("role"),
    Column("model"),
    Column("tokens_in", numeric=True),
    Column("cached", numeric=True),
    Column("tokens_out", numeric=True),
    Column("cost", numeric=True),
    Column("latency_ms", numeric=True),
    Column("tool"),
    Column("error"),
    Column("superseded_by", numeric=True),
    Column("text"),
]


def superseded_by(events: Iterable[SessionEvent]) -> dict[int, int]:
    """``seq`` of each conversation event an edited history replaced -> the branch's ``seq``."""
    kept: list[SessionEvent] = []
    replaced: dict[int, int] = {}
    for event in events:
        if event.type is EventType.BRANCH and event.branch_of is not None:
            while kept and kept[-1].seq > event.branch_of:
                replaced[kept.pop().seq] = event.seq
        elif event.type in (EventType.MESSAGE, EventType.TOOL_CALL):
            kept.append(event)
    return replaced


# -- pieces of text ------------------------------------------------------------------


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def _content_text(event: SessionEvent) -> str:
    content = event.content
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if "text" in part:
            parts.append(str(part["text"]))
        else:
            parts.append(f"[{part.get('type', 'part')}]")
    return "".join(parts)


def _label(event: SessionEvent) -> str:
    if event.type is EventType.MESSAGE:
        return (event.role or Role.USER).value
    if event.type is EventType.SYSTEM_PROMPT:
        return "system"
    if event.type is EventType.LLM_CALL and event.error is not None:
        return "error"
    return event.type.value.replace("_", " ")


def _error_text(event: SessionEvent) -> str:
    if event.error is None:
        return ""
    status = f" ({event.error.status_code})" if event.error.status_code is not None else ""
    return f"{event.error.type}{status}: {event.error.message}"


def _tool_text(event: SessionEvent) -> str:
    if event.type is EventType.TOOL_CALL or event.tool_name is not None:
        args = "" if event.tool_arguments is None else _compact(event.tool_arguments)
        return f"{event.tool_name or 'tool'}({args})"
    return "; ".join(f"{c.name}({c.arguments})" for c in event.tool_calls)


def call_summary(event: SessionEvent) -> str:
    """``model · in 1,200 (1,000 cached) · out 40 · $0.0012 · 850 ms`` for a call, else ``""``."""
    parts: list[str] = []
    if event.model:
        parts.append(event.model if not event.provider else f"{event.provider}/{event.model}")
    usage = event.usage
    if usage is not None:
        cache = [f"{format_count(usage.cache_read_tokens)} cached"] if usage.cache_read_tokens else []
        if usage.cache_write_tokens:
            cache.append(f"{format_count(usage.cache_write_tokens)} cache write")
        parts.append(f"in {format_count(usage.input_tokens)}" + (f" ({', '.join(cache)})" if cache else ""))
        reasoning = f" ({format_count(usage.reasoning_tokens)} reasoning)" if usage.reasoning_tokens else ""
        parts.append(f"out {format_count(usage.output_tokens)}{reasoning}")
        if usage.source.value != "provider":
            parts.append(usage.source.value)
        parts.append(format_cost(event.cost) if event.cost is not None else "cost ?")
    if event.app_input_tokens is not None:
        parts.append(f"app asked {format_count(event.app_input_tokens)} in")
    if event.latency_ms is not None:
        parts.append(f"{event.latency_ms:,.0f} ms")
    if event.ttft_ms is not None:
        parts.append(f"ttft {event.ttft_ms:,.0f} ms")
    if event.finish_reason:
        parts.append(event.finish_reason)
    if event.hidden:
        parts.append("hidden from the app")
    if not (event.model or usage is not None):
        return _tool_run_summary(event)
    # Spaces inside a figure are non-breaking so a wrapped line breaks between figures.
    return " · ".join(part.replace(" ", _NBSP) for part in parts)


def _tool_run_summary(event: SessionEvent) -> str:
    """``12 ms · 2 attempts`` for a tool execution (``cached`` when the cache answered)."""
    if event.type is not EventType.TOOL_CALL or event.latency_ms is None:
        return ""
    parts = [f"{event.latency_ms:,.1f}\u00a0ms"]
    attempts = event.metadata.get("attempts")
    if isinstance(attempts, int) and attempts > 1:
        parts.append(f"{attempts}\u00a0attempts")
    if event.metadata.get("cached") is True:
        parts.append("cached")
    return " · ".join(parts)


def _body(event: SessionEvent, replaced: dict[int, int]) -> list[str]:
    """The lines describing ``event`` (first line beside the label, the rest under it)."""
    lines: list[str] = []
    if event.seq in replaced:
        lines.append(f"(superseded by the branch at #{replaced[event.seq]})")
    if event.type is EventType.BRANCH:
        cut = event.branch_of
        lines.append(
            "history edited by the app; the conversation continues after "
            + (f"#{cut}" if cut is not None else "an unknown point")
        )
    elif event.type is EventType.TOOL_CALL or (event.type is EventType.PAGE_FAULT and event.tool_name):
        result = _error_text(event) if event.error is not None else _compact(event.tool_result)
        ref = f" [{event.tool_call_id}]" if event.tool_call_id else ""
        lines.append(f"{_tool_text(event)}{ref} -> {'ERROR ' if event.error else ''}{result}")
    else:
        if event.role is Role.TOOL and event.tool_call_id:
            lines.append(f"[{event.tool_call_id}] {_content_text(event)}")
        elif text := _content_text(event):
            lines.append(text)
        elif event.type is EventType.SYSTEM_PROMPT:
            lines.append("(system prompt cleared)")
        lines.extend(f"-> {c.name}({c.arguments}) [{c.id}]" for c in event.tool_calls)
        if event.error is not None:
            # A failed call is labelled "error" already; elsewhere the error needs its own mark.
            lines.append(_error_text(event) if _label(event) == "error" else f"ERROR {_error_text(event)}")
    if event.metadata:
        lines.append(f"metadata {_compact(event.metadata)}")
    if summary := call_summary(event):
        lines.append(summary)
    return lines or [""]


# -- the two renderings --------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{format_count(n)} {noun}{'' if n == 1 else 's'}"


def _totals_line(totals: SessionTotals) -> str:
    usage = totals.usage
    cached = f" ({format_count(usage.cache_read_tokens)} cached)" if usage.cache_read_tokens else ""
    parts = [
        _count(totals.llm_calls, "call"),
        f"in {format_count(usage.input_tokens)}{cached}",
        f"out {format_count(usage.output_tokens)}",
        format_cost(known_cost(totals.cost, totals.unpriced_calls), unpriced_calls=totals.unpriced_calls),
        _count(totals.tool_calls, "tool call"),
        _count(totals.errors, "error"),
        _count(totals.page_faults, "page fault"),
    ]
    if totals.hidden_usage.total_tokens:
        parts.append(f"hidden rounds {format_count(totals.hidden_usage.total_tokens)} tokens")
    return " · ".join(parts)


def _cache_line(cache: CacheFigures) -> str:
    parts = [
        f"{format_share(cache)} of input read from cache "
        f"({format_count(cache.cache_read_tokens)} of {format_count(cache.input_tokens)} tokens)"
    ]
    if cache.cache_write_tokens:
        parts.append(f"{format_count(cache.cache_write_tokens)} written")
    saved = format_saved(cache)
    parts.append(f"saved {saved}" if saved != "?" else "saving unknown (unpriced model)")
    return " · ".join(parts)


def _header(session: Session, location: str, cache: CacheFigures | None = None) -> list[tuple[str, str]]:
    rows = [("session", session.id)]
    if session.parent_id:
        rows.append(("parent", session.parent_id))
    if session.children:
        rows.append(("children", ", ".join(session.children)))
    rows.append(("store", location))
    rows.append(("time", f"{format_time(session.created_at)} to {format_time(session.updated_at)} UTC"))
    if session.system_prompt:
        rows.append(("prompt", session.system_prompt))
    if session.metadata:
        rows.append(("metadata", _compact(session.metadata)))
    for run in session.runs:
        took = f" {run.duration_s:.1f}s" if run.duration_s is not None else ""
        extra = f" {_compact(run.metadata)}" if run.metadata else ""
        rows.append(("run", f"{run.id} {run.status.value}{took}{extra}"))
    rows.append(("totals", _totals_line(session.totals)))
    if cache is not None and (cache.cache_read_tokens or cache.cache_write_tokens):
        rows.append(("cache", _cache_line(cache)))
    return rows


def render_timeline(
    session: Session, *, location: str, width: int, max_chars: int, cache: CacheFigures | None = None
) -> str:
    """The session as text for a terminal ``width`` columns wide (``cache``: its prompt-cache
    figures, shown under the totals when the session used the cache)."""
    out = [f"{key:<9} {value}" for key, value in _header(session, location, cache)]
    replaced = superseded_by(session.events)
    seq_width = len(str(session.last_seq or 1)) + 1
    indent = " " * (2 + seq_width + 2 + 8 + 2 + 11 + 1)
    wrap_width = max(width - len(indent), 30)
    day = None
    for event in session.events:
        stamp = format_time(event.timestamp)
        if stamp[:10] != day:
            day = stamp[:10]
            out.append(f"\n-- {day} --")
        lines: list[str] = []
        for piece in _body(event, replaced):
            for raw in clip(piece, max_chars).splitlines() or [""]:
                wrapped = textwrap.wrap(raw, wrap_width, break_on_hyphens=False) or [""]
                lines.extend(line.replace(_NBSP, " ") for line in wrapped)
        first = f"  {'#' + str(event.seq):>{seq_width}}  {stamp[11:]}  {_label(event):<11} {lines[0]}"
        out.append(first.rstrip())
        out.extend((indent + line).rstrip() for line in lines[1:])
    if not session.events:
        out.append("\n(no events)")
    return "\n".join(out)


def plain_rows(session: Session) -> list[list[str]]:
    """One row per event under ``PLAIN_COLUMNS``; text in full.

    A system prompt the session was created with is kept in its header, not as an
    event: it comes first, as a row numbered 0, unless the log records its prompts.
    """
    replaced = superseded_by(session.events)
    rows = []
    if session.system_prompt and not any(e.type is EventType.SYSTEM_PROMPT for e in session.events):
        rows.append(_prompt_row(session))
    for event in session.events:
        usage = event.usage
        text = "\n".join(line for line in _body_text_only(event))
        rows.append(
            [
                str(event.seq),
                iso_utc(event.timestamp),
                event.type.value,
                event.role.value if event.role else "",
                event.model or "",
                str(usage.input_tokens) if usage else "",
                str(usage.cache_read_tokens) if usage else "",
                str(usage.output_tokens) if usage else "",
                plain_decimal(event.cost) if event.cost is not None else "",
                f"{event.latency_ms:.1f}" if event.latency_ms is not None else "",
                _tool_text(event),
                _error_text(event),
                str(replaced.get(event.seq, "")),
                text,
            ]
        )
    return rows


def _prompt_row(session: Session) -> list[str]:
    row = [""] * len(PLAIN_COLUMNS)
    row[:4] = ["0", iso_utc(session.created_at), EventType.SYSTEM_PROMPT.value, Role.SYSTEM.value]
    row[-1] = session.system_prompt or ""
    return row


def _body_text_only(event: SessionEvent) -> list[str]:
    if event.type is EventType.TOOL_CALL or event.tool_name is not None:
        return [] if event.tool_result is None else [_compact(event.tool_result)]
    if event.type is EventType.BRANCH:
        return [f"continues after #{event.branch_of}" if event.branch_of is not None else ""]
    return [_content_text(event)]
