"""``ToolRegistry``: the tools one application offers, as explicit objects (no global registry).

>>> registry = ToolRegistry()
>>> @registry.tool
... def add(a: float, b: float) -> float:
...     '''Add two numbers.'''
...     return a + b
>>> registry.openai_tools()[0]["function"]["parameters"]["required"]
['a', 'b']
>>> registry["add"].validate({"a": "2", "b": 3})
{'a': 2.0, 'b': 3.0}
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.tools.schema import ArgumentsSpec, describe

__all__ = ["Tool", "ToolRegistry"]

F = TypeVar("F", bound=Callable[..., Any])

# Both providers accept 1-64 characters of this set in a tool name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable object with ``async def __call__``
    return call is not None and inspect.iscoroutinefunction(call)


@dataclass(frozen=True, slots=True)
class Tool:
    """A registered tool: the callable, its schema and its execution options.

    ``timeout`` (seconds) overrides the runner's default for this tool. ``retryable``
    says whether a transient failure may be retried (say False for tools with side
    effects that must not run twice). ``cacheable`` lets a runner with a cache reuse a
    result for identical arguments. ``blocking`` sync tools run in a worker thread so
    they can be timed out and run concurrently; ``blocking=False`` calls a cheap pure
    function inline on the event loop.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    arguments: ArgumentsSpec = field(repr=False)
    is_async: bool
    timeout: float | None = None
    retryable: bool = True
    cacheable: bool = True
    blocking: bool = True

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments object."""
        return self.arguments.schema

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments; raises ``pydantic.ValidationError``."""
        return self.arguments.validate(arguments)

    def openai_schema(self) -> dict[str, Any]:
        """One entry of OpenAI's ``tools=[...]``."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def anthropic_schema(self) -> dict[str, Any]:
        """One entry of Anthropic's ``tools=[...]``."""
        return {"name": self.name, "description": self.description, "input_schema": self.parameters}


class ToolRegistry:
    """Named tools built from plain or async functions.

    Register with the decorator (``@registry.tool`` or ``@registry.tool(name=...)``) or
    the function form (``registry.register(fn, ...)``). The schema comes from the type
    hints; the description from the docstring's first paragraph unless given.
    """

    def __init__(self, tools: Iterable[Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self.version = 0
        """Counts registrations and removals (what an engine registry mirrors checks)."""
        for fn in tools:
            self.register(fn)

    def register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retryable: bool = True,
        cacheable: bool = True,
        blocking: bool = True,
        replace: bool = False,
    ) -> Tool:
        """Register ``fn`` and return its ``Tool``.

        Raises ``InvalidSessionOperation`` for a name the providers would refuse, a name
        already taken (unless ``replace=True``) or a signature a model cannot call.
        """
        if not callable(fn):
            raise InvalidSessionOperation("register_tool", f"{fn!r} is not callable")
        tool_name = name or getattr(fn, "__name__", None) or type(fn).__name__
        if not _NAME.match(tool_name):
            raise InvalidSessionOperation(
                "register_tool", f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        if tool_name in self._tools and not replace:
            raise InvalidSessionOperation(
                "register_tool", f"a tool named {tool_name!r} is already registered"
            )
        if timeout is not None and timeout <= 0:
            raise InvalidSessionOperation(
                "register_tool", f"{tool_name}: timeout must be positive, got {timeout}"
            )
        summary, spec = describe(fn, tool_name)
        tool = Tool(
            name=tool_name,
            description=description if description is not None else summary,
            fn=fn,
            arguments=spec,
            is_async=_is_async(fn),
            timeout=timeout,
            retryable=retryable,
            cacheable=cacheable,
            blocking=blocking,
        )
        self._tools[tool_name] = tool
        self.version += 1
        return tool

    @overload
    def tool(self, fn: F, /) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retryable: bool = True,
        cacheable: bool = True,
        blocking: bool = True,
    ) -> Callable[[F], F]: ...

    def tool(self, fn: F | None = None, /, **options: Any) -> F | Callable[[F], F]:
        """Decorator form of ``register``; returns the function unchanged."""
        if fn is not None:
            self.register(fn)
            return fn

        def decorate(inner: F) -> F:
            self.register(inner, **options)
            return inner

        return decorate

    def unregister(self, name: str) -> None:
        if self._tools.pop(name, None) is not None:
            self.version += 1

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def _select(self, names: Collection[str] | None) -> list[Tool]:
        if names is None:
            return list(self._tools.values())
        missing = [n for n in names if n not in self._tools]
        if missing:
            raise InvalidSessionOperation("export_tools", f"unknown tools: {', '.join(missing)}")
        return [self._tools[n] for n in names]

    def openai_tools(self, names: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The ``tools=[...]`` argument of an OpenAI chat completion (all tools, or ``names``)."""
        return [tool.openai_schema() for tool in self._select(names)]

    def anthropic_tools(self, names: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The ``tools=[...]`` argument of an Anthropic ``messages.create`` (all tools, or ``names``)."""
        return [tool.anthropic_schema() for tool in self._select(names)]
