"""Output primitives of the command line: aligned tables, tab-separated rows, figures.

Two shapes for the same rows: ``table`` aligns columns for a person at a terminal;
``plain`` writes one tab-separated line per row, with tabs, newlines and backslashes
escaped (``\\t``, ``\\n``, ``\\\\``) so every record stays on one line for ``cut`` and
``awk``. Figures are formatted for reading in tables and left raw in plain output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TextIO

__all__ = [
    "Column",
    "OutputFormat",
    "clip",
    "escape_plain",
    "format_cost",
    "format_count",
    "format_time",
    "iso_utc",
    "plain_cost",
    "plain_decimal",
    "render_plain",
    "render_table",
    "resolve_format",
]


class OutputFormat(StrEnum):
    """How listing commands print."""

    TABLE = "table"
    """Aligned columns with a header, for reading at a terminal."""
    PLAIN = "plain"
    """Tab-separated lines, for scripts (the default when stdout is not a terminal)."""
    JSON = "json"
    """The underlying records as JSON."""


def resolve_format(requested: OutputFormat | None, stream: TextIO) -> OutputFormat:
    """``requested`` if given, else a table on a terminal and plain text elsewhere."""
    if requested is not None:
        return requested
    isatty = getattr(stream, "isatty", None)
    return OutputFormat.TABLE if isatty is not None and isatty() else OutputFormat.PLAIN


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its title and whether its cells line up on the right (numbers)."""

    title: str
    numeric: bool = False


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns under a header and a rule; trailing blanks trimmed.

    >>> print(render_table([Column("id"), Column("n", numeric=True)], [["a", "1"], ["bb", "10"]]))
    id   n
    --  --
    a    1
    bb  10
    """
    widths = [len(c.title) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if col.numeric else cell.ljust(width)
            for col, cell, width in zip(columns, cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line([c.title for c in columns]), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def escape_plain(value: str) -> str:
    """``value`` with backslash, tab, newline and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def render_plain(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, header: bool = True) -> str:
    """Rows as tab-separated lines, optionally preceded by the column titles.

    >>> render_plain([Column("id"), Column("text")], [["a", "two\\nlines"]], header=False)
    'a\\ttwo\\\\nlines'
    """
    lines = ["\t".join(c.title for c in columns)] if header else []
    lines.extend("\t".join(escape_plain(cell) for cell in row) for row in rows)
    return "\n".join(lines)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a note of what was left out (0: no limit)."""
    if limit <= 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}... (+{len(text) - limit} chars)"


def format_count(value: int) -> str:
    """A token count with thousands separators: ``12,345``."""
    return f"{value:,}"


def format_cost(cost: Decimal | None, *, unpriced_calls: int = 0) -> str:
    """A cost in dollars for a table.

    ``?`` for an unknown cost (None: no call had a known price, see ``known_cost``); a
    trailing ``+`` when some calls had none, so the figure is a lower bound. Small
    amounts keep enough digits to be seen.

    >>> format_cost(Decimal("0.00041234")), format_cost(Decimal("1.5"), unpriced_calls=1), format_cost(None)
    ('$0.000412', '$1.5000+', '?')
    """
    if cost is None:
        return "?"
    if cost == 0:
        text = "$0"
    elif abs(cost) < Decimal("0.01"):
        text = f"${cost:.6f}"
    else:
        text = f"${cost:.4f}"
    return f"{text}+" if unpriced_calls else text


def plain_cost(cost: Decimal | None) -> str:
    """A cost for plain output: the decimal, or nothing when it is unknown."""
    return "" if cost is None else plain_decimal(cost)


def plain_decimal(value: Decimal) -> str:
    """A decimal in positional notation (never ``1E-7``), for plain output."""
    return format(value, "f")


def format_time(value: datetime) -> str:
    """A timestamp in UTC as ``YYYY-MM-DD HH:MM:SS`` (naive values are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def iso_utc(value: datetime) -> str:
    """A timestamp as ISO 8601 in UTC, for plain output."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat()
