"""Fixtures for the memory tests: a store and sessions with generated conversations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from memory_support import Converse, add_turn

from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store import MemoryBackend, Store


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(MemoryBackend())
    yield s
    s.close()


@pytest.fixture
def converse(store: Store) -> Converse:
    """``converse(session_id, turns, tools_every=0, prompt=None)``: a session with a generated chat."""

    def make(
        session_id: str, turns: int, *, tools_every: int = 0, prompt: str | None = "You are helpful."
    ) -> SessionState:
        state = registry_for(store).open(session_id)
        if prompt:
            state.save_header(system_prompt=prompt)
        for i in range(turns):
            add_turn(state, i, tool=bool(tools_every) and i % tools_every == 0)
        return state

    return make
