"""Token counting: exact and offline for OpenAI encodings, per-message overhead as the API
counts it, and labelled estimates where no local tokenizer exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sessionware.core.accounting import EncodingCounter, EstimatingCounter, TokenCounter, counter_for_model
from sessionware.core.accounting.encodings import encoding_name_for_model, get_encoding

# OpenAI's cookbook example ("How to count tokens with tiktoken"): the API reported 129 prompt
# tokens for it on cl100k models and 124 on o200k models.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def test_encodings_give_the_published_token_ids() -> None:
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize(
    ("model", "encoding", "prompt_tokens"),
    [
        ("gpt-4", "cl100k_base", 129),
        ("gpt-3.5-turbo", "cl100k_base", 129),
        ("gpt-4o", "o200k_base", 124),
        ("gpt-4o-mini-2024-07-18", "o200k_base", 124),
        ("openai/gpt-4o", "o200k_base", 124),
    ],
)
def test_openai_models_count_exactly_what_the_api_reports(
    model: str, encoding: str, prompt_tokens: int
) -> None:
    counter = counter_for_model(model)
    assert isinstance(counter, EncodingCounter) and counter.exact
    assert counter.encoding_name == encoding
    assert counter.count_messages(COOKBOOK) == prompt_tokens


def test_per_message_overhead() -> None:
    counter = counter_for_model("gpt-4o")
    assert counter.count_messages([]) == 3  # every reply is primed with three tokens
    assert counter.count_message({"role": "user", "content": ""}) == 3 + 1  # framing + the role
    hello = counter.count_text("hello world")
    assert counter.count_message({"role": "user", "content": "hello world"}) == 4 + hello
    named = counter.count_message({"role": "user", "name": "ada", "content": "hello world"})
    assert named == 4 + hello + 1 + counter.count_text("ada")
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Lisbon"}'}}
    with_call = counter.count_message({"role": "assistant", "content": None, "tool_calls": [call]})
    assert with_call == 4 + 3 + counter.count_text("weather") + counter.count_text('{"city":"Lisbon"}')
    result = counter.count_message({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    assert result == 4 + counter.count_text("sunny") + counter.count_text("c1")


def test_content_parts_tools_and_provider_blocks_are_counted() -> None:
    counter = counter_for_model("gpt-4o")
    text = counter.count_text("what is this")
    parts = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert counter.count_content(parts) == text + 85
    blocks = [
        {"type": "tool_use", "id": "t", "name": "calc", "input": {"x": 1}},
        {"type": "tool_result", "tool_use_id": "t", "content": "2"},
        "plain",
    ]
    assert counter.count_content(blocks) == (
        counter.count_text("calc")
        + counter.count_text('{"x":1}')
        + counter.count_text("2")
        + counter.count_text("plain")
    )
    tool = {"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}
    assert counter.count_messages([], tools=[tool]) == 3 + 8 + counter.count_text(
        json.dumps(tool, separators=(",", ":"), sort_keys=True)
    )
    assert counter.count_content(None) == 0 and counter.count_text("") == 0


@pytest.mark.parametrize(
    "model", ["claude-3-5-sonnet-20241022", "anthropic/claude-sonnet-4", "my-local-llama", None]
)
def test_models_without_a_local_tokenizer_get_a_labelled_estimate_that_errs_high(model: str | None) -> None:
    counter = counter_for_model(model)
    assert isinstance(counter, EstimatingCounter) and not counter.exact
    assert isinstance(counter, TokenCounter)
    exact = counter_for_model("gpt-4o")
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert counter.count_text(text) > exact.count_text(text)
    assert counter.count_messages(COOKBOOK) > 124
    assert counter.count_text("") == 0


def test_encodings_that_are_not_bundled_are_refused_not_downloaded() -> None:
    with pytest.raises(LookupError, match="not available offline"):
        get_encoding("p50k_base")
    assert encoding_name_for_model("text-davinci-003") is None  # p50k: no offline data
    assert encoding_name_for_model("not-a-model") is None
    assert not counter_for_model("text-davinci-003").exact


GUARDED_COUNT = textwrap.dedent(
    """
    import json, os, socket, sys

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access is not allowed in this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    before = dict(os.environ)

    from sessionware.core.accounting import counter_for_model
    from sessionware.core.accounting.encodings import get_encoding

    counts = {
        "cl100k": get_encoding("cl100k_base").encode("hello world"),
        "o200k": get_encoding("o200k_base").encode("hello world"),
        "gpt-4": counter_for_model("gpt-4").count_text("offline counting works"),
        "gpt-4o": counter_for_model("gpt-4o").count_text("offline counting works"),
        "claude": counter_for_model("claude-3-5-sonnet").count_text("offline counting works"),
    }
    print(json.dumps({
        "counts": counts,
        "attempts": attempts,
        "env_changed": sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)),
        "cache_dir": os.environ.get("TIKTOKEN_CACHE_DIR"),
    }))
    """
)


@pytest.mark.slow
def test_counting_is_offline_and_leaves_the_environment_alone(tmp_path: Path) -> None:
    """In a fresh process, with every socket call refused and tiktoken's cache empty."""
    empty_cache = tmp_path / "tiktoken-cache"
    empty_cache.mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(empty_cache)}
    done = subprocess.run(
        [sys.executable, "-c", GUARDED_COUNT],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["env_changed"] == []
    assert report["cache_dir"] == str(empty_cache)
    assert list(empty_cache.iterdir()) == []  # nothing downloaded or cached
    assert report["counts"]["cl100k"] == [15339, 1917] and report["counts"]["o200k"] == [24912, 2375]
    assert report["counts"]["gpt-4"] == counter_for_model("gpt-4").count_text("offline counting works")
    assert report["counts"]["claude"] >= report["counts"]["gpt-4o"]
