"""``$vN`` value bindings: numeric tool results the model can pass on by reference.

Each numeric result gets a name (``$v1``, ``$v2``...). An argument that is exactly a
reference (``"$v1"`` or ``"${v1}"``) is replaced by the bound value itself, so a bound
float stays a float and an int an int; a reference inside a longer string is replaced
by the value's text. The seed round-tripped through JSON text and turned ``"$v1"`` into
the string ``"4.0"``; substitution here walks the arguments and never re-parses text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from sessionware.core.tools.text import compact_args

__all__ = ["Binding", "BindingTable", "Resolution", "bindable"]

_REF = re.compile(r"\$(?:\{(v\d+)\}|(v\d+)(?![\w]))")


def bindable(value: Any) -> bool:
    """Results that get a ``$vN``: ints and floats (not bools)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


class Binding(BaseModel):
    """A named value: ``$v{n}`` = ``value``, produced by ``tool`` called with ``arguments``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    value: int | float
    tool: str
    arguments: Any = None
    call_id: str | None = None

    def line(self) -> str:
        """``$v1 = 1517  # multiply(a=37, b=41)``"""
        return f"${self.id} = {self.value!r}  # {self.tool}({compact_args(self.arguments)})"


class Resolution(BaseModel):
    """Arguments with references replaced, and which references were found or missing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arguments: dict[str, Any]
    resolved: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


class BindingTable:
    """The bindings of one session, in order. Not thread-safe: the ledger's owner locks."""

    def __init__(self) -> None:
        self._by_id: dict[str, Binding] = {}
        self._by_call: dict[tuple[str, str], str] = {}
        self._next = 1

    def allocate(self) -> str:
        """Reserve the next id (``v3``) for a result about to be recorded."""
        ident = f"v{self._next}"
        self._next += 1
        return ident

    def add(self, binding: Binding, args_key: str) -> None:
        self._by_id[binding.id] = binding
        self._by_call[(binding.tool, args_key)] = binding.id
        number = int(binding.id[1:])
        self._next = max(self._next, number + 1)

    def find(self, tool: str, args_key: str, value: Any) -> Binding | None:
        """The binding an identical earlier call produced with the same value, if any."""
        ident = self._by_call.get((tool, args_key))
        binding = self._by_id.get(ident) if ident else None
        if binding is not None and binding.value == value and type(binding.value) is type(value):
            return binding
        return None

    def get(self, ident: str) -> Binding | None:
        return self._by_id.get(ident.lstrip("$").strip("{}"))

    def __iter__(self) -> Iterator[Binding]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def resolve(self, arguments: Mapping[str, Any]) -> Resolution:
        """Replace references in ``arguments`` (nested lists and objects included).

        >>> table = BindingTable()
        >>> table.add(Binding(id="v1", value=2.5, tool="half", arguments={"x": 5}), "k")
        >>> table.resolve({"x": "$v1", "label": "got ${v1}", "y": "$v9"}).model_dump()
        {'arguments': {'x': 2.5, 'label': 'got 2.5', 'y': '$v9'}, 'resolved': ('v1',), 'missing': ('v9',)}
        """
        resolved: list[str] = []
        missing: list[str] = []

        def text_sub(match: re.Match[str]) -> str:
            ident = match.group(1) or match.group(2)
            binding = self._by_id.get(ident)
            if binding is None:
                missing.append(ident)
                return match.group(0)
            resolved.append(ident)
            return str(binding.value)

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                whole = _REF.fullmatch(value.strip())
                if whole:
                    ident = whole.group(1) or whole.group(2)
                    binding = self._by_id.get(ident)
                    if binding is None:
                        missing.append(ident)
                        return value
                    resolved.append(ident)
                    return binding.value
                return _REF.sub(text_sub, value) if "$" in value else value
            if isinstance(value, Mapping):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        out = {k: walk(v) for k, v in arguments.items()}
        return Resolution(
            arguments=out, resolved=tuple(dict.fromkeys(resolved)), missing=tuple(dict.fromkeys(missing))
        )

    def format_block(self, *, limit: int = 20) -> str:
        """The most recent ``limit`` bindings for the model's context; "" when there are none.

        ::

            <tool_values>
            Reference these results in tool arguments as "$vN".
            $v1 = 1517  # multiply(a=37, b=41)
            </tool_values>
        """
        bindings = list(self._by_id.values())[-limit:] if limit > 0 else []
        if not bindings:
            return ""
        lines = ["<tool_values>", 'Reference these results in tool arguments as "$vN".']
        lines.extend(b.line() for b in bindings)
        lines.append("</tool_values>")
        return "\n".join(lines)
