"""Small text helpers shared by guards, bindings and procedural memory: canonical keys and
compact one-line renderings of arguments and results for the model's context."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "args_key",
    "compact_args",
    "iter_numbers",
    "number_key",
    "numbers_in_text",
    "summarize",
    "truncate",
]

# Integers with optional thousands separators, decimals, exponents.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w])")


def args_key(arguments: Any) -> str:
    """A canonical text of arguments: identical calls get identical keys."""
    return json.dumps(arguments, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _value(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, str):
        return json.dumps(truncate(text, limit), ensure_ascii=False)
    return truncate(text, limit)


def compact_args(arguments: Any, *, value_chars: int = 24, max_args: int = 4) -> str:
    """``a=1, unit="C"``: short values, long ones cut, at most ``max_args`` then ``+N``.

    >>> compact_args({"city": "Paris", "days": 3, "note": "x" * 40})
    'city="Paris", days=3, note="xxxxxxxxxxxxxxxxxxxxxxx…"'
    """
    if not isinstance(arguments, Mapping):
        return truncate(str(arguments), value_chars * 2)
    items = list(arguments.items())
    shown = [f"{k}={_value(v, value_chars)}" for k, v in items[:max_args]]
    if len(items) > max_args:
        shown.append(f"+{len(items) - max_args}")
    return ", ".join(shown)


def summarize(value: Any, limit: int = 80) -> str:
    """A one-line rendering of a result for the model's context.

    >>> summarize({"temp": 21.5, "unit": "C"})
    '{"temp": 21.5, "unit": "C"}'
    >>> summarize(None), summarize([1, 2, 3] * 50)[:12]
    ('null', 'list[150]: [')
    """
    if value is None:
        return "null"
    if isinstance(value, str):
        return truncate(" ".join(value.split()), limit)
    text = json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, list) and len(text) > limit:
        return truncate(f"list[{len(value)}]: {text}", limit)
    return truncate(text, limit)


def number_key(value: float) -> float:
    """Numbers equal to 12 significant digits share a key (2.5 == 2.50000000000001)."""
    return float(f"{value:.12g}")


def numbers_in_text(text: str) -> Iterator[float]:
    for match in _NUMBER.finditer(text):
        try:
            value = float(match.group(0).replace(",", ""))
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            continue
        if math.isfinite(value):
            yield value


def iter_numbers(value: Any, *, depth: int = 0) -> Iterator[float]:
    """Every finite number in a JSON-like value: numeric leaves and numbers inside strings."""
    if depth > 20:
        return
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield float(value)
    elif isinstance(value, str):
        yield from numbers_in_text(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_numbers(item, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_numbers(item, depth=depth + 1)
