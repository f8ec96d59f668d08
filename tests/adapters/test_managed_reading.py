"""Reading a re-sent history cheaply gives the same identities as reading it in full, and
the managed-mode modules' docstring examples hold."""

from __future__ import annotations

import copy
import doctest
import importlib
import json
from typing import Any

import pytest

from sessionware.adapters.engine.messages import message_keys
from sessionware.adapters.openai.chat import ChatEndpoint


def history(turns: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        out.append({"role": "user", "content": f"question {i}"})
        if i % 7 == 3:
            call = {
                "id": f"c{i}",
                "type": "function",
                "function": {"name": "f", "arguments": json.dumps({"i": i})},
            }
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            out.append({"role": "tool", "tool_call_id": f"c{i}", "content": f"result {i}"})
        out.append({"role": "assistant", "content": f"answer {i}"})
    return out


def sdk_copy(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the SDK hands the funnel: new dicts and lists, the same strings."""
    return [{k: copy.deepcopy(v) if isinstance(v, list) else v for k, v in m.items()} for m in messages]


def keys_of(messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """(keys as the reader gives them, keys of the messages read in full)."""
    request = ChatEndpoint().read_request({"model": "m", "messages": messages})
    assert request.keys is not None
    return request.keys, message_keys(request.messages)


def edit_content(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages[10] = {**messages[10], "content": "an edited question"}
    return messages


def edit_call(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    i = next(i for i, m in enumerate(messages) if m.get("tool_calls"))
    call = copy.deepcopy(messages[i]["tool_calls"])
    call[0]["function"]["arguments"] = '{"i": -1}'
    messages[i] = {**messages[i], "tool_calls": call}
    return messages


def slide(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [messages[0], *messages[7:]]


@pytest.mark.parametrize(
    "change", [lambda m: m, edit_content, edit_call, slide], ids=["append", "edit", "call", "slide"]
)
def test_a_resent_history_is_keyed_as_if_read_in_full(change: Any) -> None:
    app = history(60)
    first, full = keys_of(sdk_copy(app))
    assert first == full

    again = change(sdk_copy(app)) + [{"role": "user", "content": "one more"}]
    keys, full = keys_of(again)

    assert keys == full
    if change is edit_content:
        assert keys[:9] == first[:9] and keys[9] != first[9]


@pytest.mark.parametrize(
    "module",
    [
        "sessionware.adapters.engine.resent",
        "sessionware.adapters.summarizer",
        "sessionware.core.memory.policy",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)

    assert result.attempted > 0
    assert result.failed == 0


def edit_in_place(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages[10]["content"] = "edited where it was"
    return messages


def edit_call_in_place(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    i = next(i for i, m in enumerate(messages) if m.get("tool_calls"))
    messages[i]["tool_calls"][0]["function"]["arguments"] = '{"i": -2}'
    return messages


@pytest.mark.parametrize("change", [edit_in_place, edit_call_in_place], ids=["content", "call"])
def test_a_history_edited_in_place_between_calls_is_keyed_anew(change: Any) -> None:
    # Readers that get the app's own dicts (LiteLLM's) see the same objects call after
    # call: what was seen must not be the app's dicts themselves.
    app = history(60)
    first, _ = keys_of(app)

    keys, full = keys_of(change(app) + [{"role": "user", "content": "one more"}])

    assert keys == full
    assert keys[:-1] != first


def test_a_call_made_again_without_its_last_answer_is_keyed_as_if_read_in_full() -> None:
    app = history(60)
    keys_of(sdk_copy(app))

    keys, full = keys_of(sdk_copy(app[:-1]))

    assert keys == full


def test_a_history_parsed_anew_on_every_call_is_keyed_only_past_what_was_seen() -> None:
    # A proxy's request body is new JSON every call: new dicts, new strings, equal content.
    from sessionware.adapters.engine.resent import ResentHistory

    keyed: list[int] = []

    def key_all(messages: list[Any]) -> tuple[list[int], list[dict[str, Any]]]:
        keyed.append(len(messages))
        return [hash(json.dumps(m, sort_keys=True)) for m in messages], list(messages)

    resent = ResentHistory()
    app = history(60)
    resent.keyed(json.loads(json.dumps(app)), key_all)
    app.append({"role": "user", "content": "one more"})

    keys, kept = resent.keyed(json.loads(json.dumps(app)), key_all)

    assert keyed == [len(app) - 1, 1]
    assert keys == key_all(app)[0] and kept == app
    other = json.loads(json.dumps(app))
    other[5]["content"] = "another conversation with the same start"
    keyed.clear()
    assert resent.keyed(other, key_all)[0] == key_all(other)[0]
    assert keyed == [len(other), len(other)]  # not taken for the one seen: keyed in full
