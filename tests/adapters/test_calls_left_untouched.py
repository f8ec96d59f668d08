"""Requests and responses are left exactly as the app and the SDK made them.

Complaint classes 10, 12 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

import copy
import json

from adapter_support import make_anthropic, make_openai, only_session, session_events

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"


# -- 10. Wrappers mutate or retype SDK objects ---------------------------------------------------


def test_responses_and_requests_are_left_exactly_as_they_were(openai_api: FakeOpenAI, store: Store) -> None:
    bare = make_openai("OpenAI", openai_api)
    wrapped = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    snapshot = copy.deepcopy(messages)
    api = Reply(text="ok", cached_tokens=1)
    openai_api.push(api, api)

    expected = bare.chat.completions.create(model=MODEL, messages=messages)
    actual = wrapped.chat.completions.create(model=MODEL, messages=messages)

    assert messages == snapshot  # the app's list and dicts untouched
    assert actual.model_dump() == expected.model_dump()
    assert type(actual.usage.prompt_tokens_details).__name__ == "PromptTokensDetails"  # langfuse#5133
    recorded = json.dumps([e.model_dump(mode="json") for e in session_events(store, only_session(store))])
    assert "sessionware" not in recorded and "Stream" not in recorded  # no wrapper types leak (langfuse#2394)


# -- 12. Transparent rewriting in gateways broke caching and triggered bogus retrievals -------------


def test_observe_mode_sends_what_the_app_built(
    openai_api: FakeOpenAI, anthropic_api: FakeAnthropic, store: Store
) -> None:
    messages = [
        {"role": "system", "content": "Long stable prefix " * 50},
        {"role": "user", "content": "Summarise commit 3f9c2a1b7e and hash=9e107d9d372bb6826bd81d3542a419d6"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "git_show", "arguments": "{}"}}
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "tree hash=da39a3ee5e6b4b0d3255bfef95601890afd80709",
        },
    ]
    bare, wrapped = (
        make_openai("OpenAI", openai_api),
        sessionware.wrap(make_openai("OpenAI", openai_api), store=store),
    )
    bare.chat.completions.create(model=MODEL, messages=messages)
    wrapped.chat.completions.create(model=MODEL, messages=messages)
    blocks = [{"type": "text", "text": "Cached context " * 100, "cache_control": {"type": "ephemeral"}}]
    claude = [{"role": "user", "content": [*blocks, {"type": "text", "text": "hash=abc123"}]}]
    make_anthropic("Anthropic", anthropic_api).messages.create(
        model=CLAUDE, max_tokens=9, messages=claude, system=blocks
    )
    sessionware.wrap(make_anthropic("Anthropic", anthropic_api), store=store).messages.create(
        model=CLAUDE, max_tokens=9, messages=claude, system=blocks
    )

    # The one addition on OpenAI's own API: the session's prompt_cache_key (see
    # test_prompt_cache_key); everything the app built goes out unchanged.
    assert len(openai_api.requests) == 2
    sent = dict(openai_api.requests[1])
    assert sent.pop("prompt_cache_key").startswith("sw-")
    assert openai_api.requests[0] == sent
    assert len(anthropic_api.requests) == 2 and anthropic_api.requests[0] == anthropic_api.requests[1]
    assert anthropic_api.requests[1]["system"][0]["cache_control"] == {"type": "ephemeral"}
