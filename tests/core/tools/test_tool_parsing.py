"""Reading tool calls from every shape an assistant message comes in."""

from __future__ import annotations

import pytest
from anthropic.types import Message, ToolUseBlock
from openai.types.chat import ChatCompletionMessage
from tool_support import anthropic_reply, openai_call, openai_reply

from sessionware import ToolCall, ToolProcessingError
from sessionware.core.tools import ToolFormat, ToolInvocation, parse_assistant_message


def test_an_openai_message_dict_and_sdk_object_read_the_same() -> None:
    reply = openai_reply(("call_1", "add", {"a": 1, "b": 2}), content="Adding.")
    from_dict = parse_assistant_message(reply)
    from_sdk = parse_assistant_message(ChatCompletionMessage.model_validate(reply))
    assert from_dict == from_sdk
    assert from_dict.format is ToolFormat.OPENAI and from_dict.text == "Adding."
    [call] = from_dict.calls
    assert (call.id, call.name, call.arguments, call.raw_arguments) == (
        "call_1",
        "add",
        {"a": 1, "b": 2},
        '{"a": 1, "b": 2}',
    )


def test_anthropic_messages_blocks_and_single_blocks() -> None:
    body = anthropic_reply(("toolu_1", "sqrt", {"x": 2}), ("toolu_2", "add", {"a": 1, "b": 1}), text="Sure.")
    whole = parse_assistant_message(Message.model_validate(body))
    blocks = parse_assistant_message(
        [ToolUseBlock(type="tool_use", id="toolu_1", name="sqrt", input={"x": 2})]
    )
    single = parse_assistant_message(body["content"][1])
    assert whole.format is ToolFormat.ANTHROPIC and whole.text == "Sure."
    assert [(c.id, c.name, c.arguments) for c in whole.calls] == [
        ("toolu_1", "sqrt", {"x": 2}),
        ("toolu_2", "add", {"a": 1, "b": 1}),
    ]
    assert whole.calls[0].raw_arguments == '{"x": 2}'
    assert blocks.calls == whole.calls[:1] and blocks.format is ToolFormat.ANTHROPIC
    assert single.calls == whole.calls[:1] and single.format is ToolFormat.ANTHROPIC
    text_only = parse_assistant_message({"role": "assistant", "content": [{"type": "text", "text": "Hi"}]})
    assert (text_only.calls, text_only.text) == ((), "Hi")


def test_lists_of_calls_in_any_supported_form() -> None:
    turn = parse_assistant_message(
        [
            ToolCall(id="c1", name="add", arguments='{"a": 1}'),
            openai_call("c2", "add", {"a": 2}),
            ToolInvocation(id="c3", name="add", raw_arguments="{", parse_error="invalid JSON"),
            {"name": "add", "arguments": {"a": 4}},
        ]
    )
    assert [c.arguments for c in turn.calls] == [{"a": 1}, {"a": 2}, {}, {"a": 4}]
    assert turn.calls[2].parse_error == "invalid JSON"
    assert turn.calls[3].id.startswith("call_") and len(turn.calls[3].id) == 29
    assert turn.tool_calls()[3].arguments == '{"a": 4}'


@pytest.mark.parametrize(
    ("arguments", "expected", "error"),
    [
        ("", {}, None),
        (None, {}, None),
        ("  ", {}, None),
        ('{"a": 1}', {"a": 1}, None),
        ("[1, 2]", {}, "arguments must be a JSON object, got list"),
        ("{oops", {}, "invalid JSON: Expecting property name"),
        (5, {}, "arguments must be a JSON object, got int"),
    ],
)
def test_arguments_that_are_not_a_json_object_keep_a_parse_error(
    arguments: object, expected: dict[str, object], error: str | None
) -> None:
    [call] = parse_assistant_message([{"id": "c", "function": {"name": "f", "arguments": arguments}}]).calls
    assert call.arguments == expected
    if error is None:
        assert call.parse_error is None
    else:
        assert call.parse_error is not None and call.parse_error.startswith(error)


def test_a_completion_is_read_from_its_first_choice() -> None:
    completion = {"id": "x", "choices": [{"index": 0, "message": openai_reply(("c1", "add", {"a": 1}))}]}
    assert [c.id for c in parse_assistant_message(completion).calls] == ["c1"]
    assert parse_assistant_message({"choices": []}).calls == ()


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({"tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]}, "has no name"),
        ({"tool_calls": [{"id": "c1", "function": {"name": ""}}]}, "has no name"),
        (["not a call"], "must be a mapping or a model, got str"),
        ("just text", "cannot read tool calls from str"),
    ],
)
def test_unreadable_calls_raise_tool_processing_error(message: object, match: str) -> None:
    with pytest.raises(ToolProcessingError, match=match):
        parse_assistant_message(message)


def test_openai_text_parts_become_the_text() -> None:
    reply = {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "tool_calls": [],
    }
    assert parse_assistant_message(reply).text == "ab"
