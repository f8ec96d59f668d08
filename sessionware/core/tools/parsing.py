"""Reading the tool calls out of an assistant message, whatever shape it comes in.

Accepted: an OpenAI chat message (dict, or the SDK's ``ChatCompletionMessage``), a
whole ``ChatCompletion`` (its first choice), an Anthropic ``Message`` or its
``content`` blocks (``tool_use``), a list of tool calls (OpenAI dicts, ``tool_use``
blocks, ``{"name", "arguments"}`` dicts, ``ToolCall`` or ``ToolInvocation`` models).
SDK objects are read through ``model_dump()`` so no provider SDK is imported here.

Tool calls written in a model's text (``<tool name="add" args='{"a": 1}'/>``, a JSON
``tool_calls`` object, a function-call object) are read by the engine's parser plugins
(``parse_text_calls``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from sessionware.core.errors import ToolProcessingError
from sessionware.core.session.models import ToolCall
from sessionware.core.tools.models import ToolFormat, ToolInvocation

__all__ = ["AssistantTurn", "parse_assistant_message", "parse_text_calls"]

logger = logging.getLogger(__name__)


class AssistantTurn(BaseModel):
    """An assistant message reduced to what tool execution needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: ToolFormat
    text: str | None = None
    calls: tuple[ToolInvocation, ...] = ()

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls as recorded on an assistant event (arguments as the model's JSON text)."""
        return tuple(ToolCall(id=c.id, name=c.name, arguments=c.raw_arguments) for c in self.calls)


def _plain(value: Any) -> Any:
    """SDK models and other pydantic objects as plain data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python", exclude_none=False)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    return value


def _decode(name: str, call_id: str, arguments: Any) -> ToolInvocation:
    if isinstance(arguments, Mapping):
        args = dict(arguments)
        return ToolInvocation(
            id=call_id,
            name=name,
            arguments=args,
            raw_arguments=json.dumps(args, default=str, ensure_ascii=False),
        )
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return ToolInvocation(id=call_id, name=name)  # some models send "" for a tool without parameters
    if not isinstance(arguments, str):
        return ToolInvocation(
            id=call_id,
            name=name,
            raw_arguments=json.dumps(arguments, default=str),
            parse_error=f"arguments must be a JSON object, got {type(arguments).__name__}",
        )
    try:
        decoded = json.loads(arguments)
    except ValueError as exc:
        return ToolInvocation(
            id=call_id, name=name, raw_arguments=arguments, parse_error=f"invalid JSON: {exc}"
        )
    if not isinstance(decoded, dict):
        return ToolInvocation(
            id=call_id,
            name=name,
            raw_arguments=arguments,
            parse_error=f"arguments must be a JSON object, got {type(decoded).__name__}",
        )
    return ToolInvocation(id=call_id, name=name, arguments=decoded, raw_arguments=arguments)


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _one(call: Any) -> tuple[ToolFormat, ToolInvocation]:
    if isinstance(call, ToolInvocation):
        return ToolFormat.OPENAI, call
    if isinstance(call, ToolCall):
        return ToolFormat.OPENAI, _decode(call.name, call.id, call.arguments)
    data = _plain(call)
    if not isinstance(data, Mapping):
        raise ToolProcessingError("?", f"a tool call must be a mapping or a model, got {type(call).__name__}")
    call_id = data.get("id")
    if data.get("type") == "tool_use":
        fmt, name, arguments = ToolFormat.ANTHROPIC, data.get("name"), data.get("input")
    else:
        function = data.get("function")
        source = function if isinstance(function, Mapping) else data
        fmt, name, arguments = ToolFormat.OPENAI, source.get("name"), source.get("arguments")
    if not isinstance(name, str) or not name:
        raise ToolProcessingError("?", "the tool call has no name", call_id=str(call_id) if call_id else None)
    return fmt, _decode(name, str(call_id) if call_id else _new_id(), arguments)


def _calls(items: Sequence[Any], fmt: ToolFormat, text: str | None) -> AssistantTurn:
    parsed = [_one(item) for item in items]
    if parsed:
        fmt = parsed[0][0]
    return AssistantTurn(format=fmt, text=text, calls=tuple(inv for _, inv in parsed))


def _is_block(item: Any) -> bool:
    """An Anthropic content block (text, tool_use, thinking...), not an OpenAI tool call."""
    return isinstance(item, Mapping) and item.get("type") not in (None, "function")


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [_plain(p) for p in content]
        joined = "".join(
            str(p.get("text", "")) for p in parts if isinstance(p, Mapping) and p.get("type") == "text"
        )
        return joined or None
    return None


def _blocks(blocks: Sequence[Any]) -> AssistantTurn:
    plain = [_plain(b) for b in blocks]
    uses = [b for b in plain if isinstance(b, Mapping) and b.get("type") == "tool_use"]
    return _calls(uses, ToolFormat.ANTHROPIC, _text(plain))


def parse_assistant_message(message: Any) -> AssistantTurn:
    """The tool calls (and text) of an assistant message; no calls gives an empty turn.

    Raises ``ToolProcessingError`` for a call without a name or of an unreadable shape.
    Arguments that are not a JSON object do not raise: the call keeps a ``parse_error``.

    >>> turn = parse_assistant_message({"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]})
    >>> turn.calls[0].arguments
    {'a': 1}
    """
    data = _plain(message)
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        plain = [_plain(i) for i in data]
        if plain and all(_is_block(i) for i in plain):
            return _blocks(plain)
        return _calls(list(data), ToolFormat.OPENAI, None)
    if not isinstance(data, Mapping):
        raise ToolProcessingError("?", f"cannot read tool calls from {type(message).__name__}")
    if "choices" in data:
        choices = data.get("choices") or []
        if not choices:
            return AssistantTurn(format=ToolFormat.OPENAI)
        return parse_assistant_message(_plain(choices[0]).get("message") or {})
    if data.get("type") == "tool_use":
        return _calls([data], ToolFormat.ANTHROPIC, None)
    content = data.get("content")
    if isinstance(content, list) and data.get("role") == "assistant" and "tool_calls" not in data:
        return _blocks(content)
    return _calls(list(data.get("tool_calls") or ()), ToolFormat.OPENAI, _text(content))


async def parse_text_calls(text: str) -> AssistantTurn:
    """The tool calls written in ``text``, read by each of the engine's parsers (XML tags,
    JSON ``tool_calls``, OpenAI and function-call objects); the same call found twice
    counts once. The text is kept as the assistant's message.

    Imports the engine (see ``engine.load_engine``).
    """
    from sessionware.core.tools.engine import load_engine

    load_engine()
    from chuk_tool_processor.plugins.parsers.function_call_tool import FunctionCallPlugin
    from chuk_tool_processor.plugins.parsers.json_tool import JsonToolPlugin
    from chuk_tool_processor.plugins.parsers.openai_tool import OpenAIToolPlugin
    from chuk_tool_processor.plugins.parsers.xml_tool import XmlToolPlugin

    found: dict[tuple[str, str], ToolInvocation] = {}
    for parser in (OpenAIToolPlugin(), JsonToolPlugin(), FunctionCallPlugin(), XmlToolPlugin()):
        try:
            calls = await parser.try_parse(text)
        except Exception as exc:  # a parser that cannot read this text finds nothing in it
            logger.debug("%s found no tool calls: %r", type(parser).__name__, exc)
            continue
        for call in calls:
            invocation = _decode(
                call.tool,
                f"call_{uuid.UUID(call.id).hex[:24]}" if _is_uuid(call.id) else call.id,
                call.arguments,
            )
            found.setdefault((invocation.name, invocation.raw_arguments), invocation)
    return AssistantTurn(format=ToolFormat.OPENAI, text=text, calls=tuple(found.values()))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
