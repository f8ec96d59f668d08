"""The seam managed mode builds on: replacing the body, and hidden follow-up rounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapter_support import conversation, make_openai, session_events

from sessionware.adapters.engine import install
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.types import CallOutput
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.adapters.openai.spec import OpenAISpec
from sessionware.core.session.enums import EventType
from sessionware.core.store import Store


class ReplaceMessages:
    """Sends a fixed message list instead of the app's."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages

    def before_send(self, call: HookedCall) -> Mapping[str, Any] | None:
        call.extra_fields["app_input_tokens"] = 99
        return {**call.body, "messages": self.messages}

    def after_response(self, call: HookedCall, output: CallOutput) -> Mapping[str, Any] | None:
        return None


class AnswerOneToolCall:
    """Answers the model's first tool call itself and asks again, once."""

    def before_send(self, call: HookedCall) -> Mapping[str, Any] | None:
        return None

    def after_response(self, call: HookedCall, output: CallOutput) -> Mapping[str, Any] | None:
        if not output.calls:
            return None
        [tool_call] = output.calls
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": tool_call.id,
                    "type": "function",
                    "function": {"name": tool_call.name, "arguments": tool_call.arguments},
                }
            ],
        }
        result = {"role": "tool", "tool_call_id": tool_call.id, "content": "page 7: the answer is 42"}
        return {**call.body, "messages": [*call.body["messages"], assistant, result]}


def wrapped(api: FakeOpenAI, store: Store, hooks: Any) -> Any:
    client = make_openai("OpenAI", api)
    install.install(
        client,
        WrapConfig(spec=OpenAISpec(), store=store, session_id="s", hooks=hooks),
        funnel="request",
        is_async=False,
    )
    return client


def test_a_hook_can_replace_the_body_that_is_sent(openai_api: FakeOpenAI, store: Store) -> None:
    client = wrapped(openai_api, store, ReplaceMessages([{"role": "user", "content": "rewritten"}]))

    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "original"}]
    )

    assert openai_api.requests[0]["messages"] == [{"role": "user", "content": "rewritten"}]
    assert reply.choices[0].message.content == "You said: rewritten"
    events = session_events(store, "s")
    assert conversation(events)[0] == ("user", "original")  # the app's request is what is recorded
    assert events[-1].app_input_tokens == 99


def test_a_hook_can_run_a_hidden_round_the_app_never_sees(openai_api: FakeOpenAI, store: Store) -> None:
    openai_api.push(Reply(tool_calls=[("page_fault", {"page": 7})]), Reply(text="It is 42."))
    client = wrapped(openai_api, store, AnswerOneToolCall())

    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What was it?"}]
    )

    assert reply.choices[0].message.content == "It is 42."
    assert len(openai_api.requests) == 2
    assert openai_api.requests[1]["messages"][-1]["content"] == "page 7: the answer is 42"
    events = session_events(store, "s")
    hidden = [e for e in events if e.hidden]
    assert [(e.type, e.tool_calls[0].name) for e in hidden] == [(EventType.LLM_CALL, "page_fault")]
    assert hidden[0].usage is not None
    assert conversation(events) == [("user", "What was it?"), ("assistant", "It is 42.")]
