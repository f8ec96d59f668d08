"""A bookkeeping failure never breaks the app's call (and is raised under tests).

Complaint class 11 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import httpx
import pytest
from adapter_support import calls, make_openai, n_calls, only_session, session_events, sse_response

import sessionware
from sessionware.adapters.api import settle
from sessionware.adapters.engine import guard
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.accounting.tokens import EncodingCounter
from sessionware.core.accounting.usage import TokenSource
from sessionware.core.errors import StorageError
from sessionware.core.session.enums import Role
from sessionware.core.session.state import DEFAULT_MAX_EVENT_BYTES
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Say something"}]


# -- 11. Instrumentation errors leak into the app ------------------------------------------------


def test_a_store_that_is_down_never_breaks_the_call(
    openai_api: FakeOpenAI, tmp_path: Path, lenient: None
) -> None:
    broken = tmp_path / "not-a-database.db"
    broken.write_bytes(b"this is not sqlite" * 100)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=Store(SQLiteBackend(broken)))
    errors_before = guard.health().internal_errors

    reply = client.chat.completions.create(model=MODEL, messages=QUESTION)
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert reply.choices[0].message.content == "You said: Say something"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: Say something"
    assert guard.health().internal_errors == errors_before + 2
    assert "StorageError" in (guard.health().last_error or "")


def test_under_tests_a_bookkeeping_failure_is_raised(openai_api: FakeOpenAI, tmp_path: Path) -> None:
    broken = tmp_path / "not-a-database.db"
    broken.write_bytes(b"this is not sqlite" * 100)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=Store(SQLiteBackend(broken)))

    with pytest.raises(StorageError):
        client.chat.completions.create(model=MODEL, messages=QUESTION)
        # Its session is opened off the app's path: the failure surfaces at the next settle.
        settle()


def test_a_chunk_we_cannot_read_does_not_cut_the_stream(
    openai_client: Any, openai_api: FakeOpenAI, store: Store, lenient: None
) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    weird = {
        **base,
        "choices": [{"index": 0, "delta": {"content": ["not", "a", "string"]}, "finish_reason": None}],
    }
    fine = {**base, "choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": "stop"}]}
    openai_api.push(sse_response(httpx, [weird, fine]))
    errors_before = guard.health().internal_errors

    received = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert [c.choices[0].delta.content for c in received] == [["not", "a", "string"], "fine"]
    assert guard.health().internal_errors > errors_before


def test_the_app_s_own_exceptions_pass_through_untouched(openai_client: Any, store: Store) -> None:
    # openlit#565: a wrapper swallowed the user's exception and returned None.
    class AppError(Exception):
        pass

    with pytest.raises(AppError, match="the app's own"):
        for _ in openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True):
            raise AppError("the app's own")
    gc.collect()

    assert n_calls(store) == 1


def test_an_answer_longer_than_an_event_may_be_is_recorded_cut_with_its_usage(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    # openai 3.63's own suite (test_large_payload_contract) answers 32 MiB: the session
    # refused the event, so the call was not recorded, and strict mode raised that into
    # the next, unrelated call.
    answer = "x" * (DEFAULT_MAX_EVENT_BYTES + 1)
    openai_api.push(Reply(text=answer))

    reply = openai_client.chat.completions.create(model=MODEL, messages=QUESTION)
    openai_client.chat.completions.create(model=MODEL, messages=QUESTION)  # the next call is unharmed

    assert reply.choices[0].message.content == answer  # the app's reply is whole
    events = session_events(store, only_session(store))
    cut = next(e for e in events if e.role is Role.ASSISTANT)
    assert cut.content == answer[:DEFAULT_MAX_EVENT_BYTES]
    assert cut.metadata["cut_from_chars"] == {"content": DEFAULT_MAX_EVENT_BYTES + 1}
    usage = calls(events)[0].usage
    assert usage is not None and usage.output_tokens > 0
    assert len(calls(events)) == 2


def test_a_long_answer_without_usage_is_estimated_by_its_length_not_tokenized(
    openai_client: Any, openai_api: FakeOpenAI, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # openai 3.63's own suite answers 32 MiB without usage: counting it with the tokenizer
    # took 36 CPU-s on the thread that settled the session, and starved the app's other
    # threads and child processes (its test_mtls_http_client then missed a 15 s limit).
    # A long prompt was already estimated by its length; a long answer was not.
    tokenized: list[int] = []
    count_text = EncodingCounter.count_text

    def counted(counter: EncodingCounter, text: str) -> int:
        tokenized.append(len(text))
        return count_text(counter, text)

    monkeypatch.setattr(EncodingCounter, "count_text", counted)
    answer = "x" * 100_000  # 12,500 tokens for the tokenizer, 25,000 by length
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    openai_api.push(
        sse_response(  # a stream the app did not ask usage for
            httpx,
            [
                {**base, "choices": [{"index": 0, "delta": {"content": answer}, "finish_reason": None}]},
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ],
        )
    )

    chunks = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer
    usage = calls(session_events(store, only_session(store)))[0].usage
    assert usage is not None and usage.source is TokenSource.ESTIMATE
    assert usage.output_tokens == len(answer) // 4
    assert usage.input_tokens > 0
    assert tokenized and max(tokenized) < len(answer)  # the prompt was counted, the answer not
