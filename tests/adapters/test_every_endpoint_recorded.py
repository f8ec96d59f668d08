"""Every endpoint and helper of both SDKs is recorded.

Complaint class 7 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

from typing import Any

import pytest
from adapter_support import n_calls
from openai import NOT_GIVEN, omit

from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"


# -- 7. Coverage gaps ------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_endpoint_and_helper_is_recorded(
    openai_client: Any, anthropic_client: Any, store: Store
) -> None:
    text = [{"role": "user", "content": "hi"}]
    openai_client.chat.completions.create(model=MODEL, messages=text, temperature=omit, top_p=NOT_GIVEN)
    openai_client.chat.completions.parse(model=MODEL, messages=text)
    with openai_client.chat.completions.stream(model=MODEL, messages=text) as s:
        s.until_done()
    openai_client.responses.create(model=MODEL, input="hi")
    openai_client.responses.parse(model=MODEL, input="hi")
    with openai_client.responses.stream(model=MODEL, input="hi") as r:
        r.until_done()
    openai_client.embeddings.create(model="text-embedding-3-small", input="hi")
    anthropic_client.messages.create(model=CLAUDE, max_tokens=9, messages=text)
    with anthropic_client.messages.stream(model=CLAUDE, max_tokens=9, messages=text) as m:
        m.until_done()
    anthropic_client.beta.messages.create(model=CLAUDE, max_tokens=9, messages=text)
    anthropic_client.beta.messages.parse(model=CLAUDE, max_tokens=9, messages=text)
    with anthropic_client.beta.messages.stream(model=CLAUDE, max_tokens=9, messages=text) as b:
        b.until_done()

    assert n_calls(store) == 12
