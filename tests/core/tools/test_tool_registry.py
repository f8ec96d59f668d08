"""``ToolRegistry``: schemas derived from type hints, validation, and exports both providers accept."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, Literal

import pytest
from anthropic.types import ToolParam
from openai.types.chat import ChatCompletionToolParam
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from sessionware import InvalidSessionOperation
from sessionware.core.tools import ToolRegistry

OPENAI_TOOLS = TypeAdapter(list[ChatCompletionToolParam])
ANTHROPIC_TOOLS = TypeAdapter(list[ToolParam])


class Point(BaseModel):
    x: float
    y: float


def test_the_schema_comes_from_type_hints_defaults_and_descriptions() -> None:
    registry = ToolRegistry()

    @registry.tool
    def search(
        query: Annotated[str, Field(description="what to look for")],
        limit: int = 5,
        order: Literal["asc", "desc"] = "desc",
        since: dt.date | None = None,
    ) -> list[str]:
        """Search the archive.

        Longer explanation that stays in the description.

        Args:
            limit: how many results at most
        """
        return []

    tool = registry["search"]
    assert tool.description == "Search the archive. Longer explanation that stays in the description."
    assert tool.parameters == {
        "additionalProperties": False,
        "properties": {
            "query": {"description": "what to look for", "type": "string"},
            "limit": {"default": 5, "description": "how many results at most", "type": "integer"},
            "order": {"default": "desc", "enum": ["asc", "desc"], "type": "string"},
            "since": {"anyOf": [{"format": "date", "type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["query"],
        "type": "object",
    }


def test_validation_coerces_what_json_cannot_carry_and_fills_defaults() -> None:
    registry = ToolRegistry()

    @registry.tool
    def plot(at: Point, when: dt.date, scale: float = 1.0) -> str:
        """Plot a point."""
        return "ok"

    kwargs = registry["plot"].validate({"at": {"x": 1, "y": "2.5"}, "when": "2024-05-01"})
    assert kwargs == {"at": Point(x=1, y=2.5), "when": dt.date(2024, 5, 1), "scale": 1.0}
    assert isinstance(kwargs["at"], Point)


def test_unknown_and_missing_arguments_are_validation_errors() -> None:
    registry = ToolRegistry()
    registry.register(lambda a, b=2: a, name="f")
    with pytest.raises(ValidationError) as info:
        registry["f"].validate({"b": 1, "c": 3})
    assert {(e["type"], e["loc"]) for e in info.value.errors()} == {
        ("missing", ("a",)),
        ("extra_forbidden", ("c",)),
    }


def test_parameter_names_that_clash_with_pydantic_still_work() -> None:
    registry = ToolRegistry()

    def export(json: str, model_id: int, schema: bool = False) -> str:
        return f"{json}:{model_id}:{schema}"

    registry.register(export)
    assert set(registry["export"].parameters["properties"]) == {"json", "model_id", "schema"}
    assert registry["export"].validate({"json": "x", "model_id": "7"}) == {
        "json": "x",
        "model_id": 7,
        "schema": False,
    }


def test_decorator_and_function_forms_register_sync_async_and_callable_objects() -> None:
    registry = ToolRegistry()

    @registry.tool(name="ping", description="Answer pong.", timeout=2.0, retryable=False)
    async def ping_impl() -> str:
        return "pong"

    class Counter:
        async def __call__(self, step: int = 1) -> int:
            return step

    registry.register(Counter(), name="count")
    registry.register(functools.partial(lambda base, x: base + x, 10), name="offset")

    assert registry.names == ["ping", "count", "offset"]
    assert ping_impl.__name__ == "ping_impl"  # the decorator returns the function itself
    ping = registry["ping"]
    assert (ping.is_async, ping.description, ping.timeout, ping.retryable) == (
        True,
        "Answer pong.",
        2.0,
        False,
    )
    assert registry["count"].is_async
    assert registry["count"].validate({}) == {"step": 1}
    assert not registry["offset"].is_async
    assert registry["offset"].validate({"x": "3"}) == {"x": "3"}  # no hint: any JSON value


def test_registries_are_independent_objects() -> None:
    first, second = ToolRegistry(), ToolRegistry()
    first.register(lambda: 1, name="only_here")
    assert "only_here" in first and "only_here" not in second
    assert len(second) == 0


@pytest.mark.parametrize(
    ("fn", "name", "message"),
    [
        (lambda *args: 0, "f", "VAR_POSITIONAL|variadic positional"),
        (lambda **kw: 0, "f", "variadic keyword"),
        (lambda: 0, "has space", "must be 1-64 letters"),
        (lambda: 0, "x" * 65, "must be 1-64 letters"),
        ("not callable", "f", "is not callable"),
    ],
)
def test_unusable_tools_are_refused_at_registration(fn: Any, name: str, message: str) -> None:
    with pytest.raises(InvalidSessionOperation, match=message):
        ToolRegistry().register(fn, name=name)


def test_positional_only_parameters_and_unresolvable_hints_are_refused() -> None:
    def positional(a: int, /) -> int:
        return a

    def broken(a: NoSuchType) -> int:  # type: ignore[name-defined]  # noqa: F821
        return 0

    registry = ToolRegistry()
    with pytest.raises(InvalidSessionOperation, match="positional-only"):
        registry.register(positional)
    with pytest.raises(InvalidSessionOperation, match="cannot resolve the type hints"):
        registry.register(broken)


class Handle:
    """A Python object no JSON value can become."""


def test_parameter_types_json_cannot_carry_are_refused() -> None:
    def use(handle: Handle) -> None:
        return None

    with pytest.raises(InvalidSessionOperation, match="use: no JSON schema for its parameters"):
        ToolRegistry().register(use)


def test_a_taken_name_is_refused_unless_replaced() -> None:
    registry = ToolRegistry()
    registry.register(lambda: 1, name="t")
    with pytest.raises(InvalidSessionOperation, match="already registered"):
        registry.register(lambda: 2, name="t")
    registry.register(lambda: 2, name="t", replace=True, description="second")
    assert registry["t"].description == "second"
    registry.unregister("t")
    assert "t" not in registry and registry.get("t") is None


def test_exports_are_valid_tool_params_for_the_openai_and_anthropic_sdks(registry: ToolRegistry) -> None:
    openai_tools = registry.openai_tools()
    anthropic_tools = registry.anthropic_tools()
    OPENAI_TOOLS.validate_python(openai_tools)
    ANTHROPIC_TOOLS.validate_python(anthropic_tools)
    assert [t["function"]["name"] for t in openai_tools] == registry.names
    weather = next(t for t in anthropic_tools if t["name"] == "weather")
    assert weather["description"] == "Current weather of a city."
    assert weather["input_schema"]["properties"]["city"] == {
        "description": "the city's English name",
        "type": "string",
    }
    assert weather["input_schema"]["required"] == ["city"]


def test_exports_can_be_limited_to_named_tools(registry: ToolRegistry) -> None:
    assert [t["name"] for t in registry.anthropic_tools(["divide", "add"])] == ["divide", "add"]
    with pytest.raises(InvalidSessionOperation, match="unknown tools: nope"):
        registry.openai_tools(["add", "nope"])
