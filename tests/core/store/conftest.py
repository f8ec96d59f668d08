"""Every backend behind the same fixtures, so one contract suite runs on all of them.

A new backend joins the contract suite (``test_store_contract.py``) by adding one entry
to ``BACKENDS`` and one branch to ``BackendKind.client``: a function that returns a new
client of the same data each time it is called (another process would have its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from store_support import BACKENDS, BackendKind

from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store import SessionStore, Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendKind]:
    kind = BackendKind(request.param, request, tmp_path)
    yield kind
    kind.close()


@pytest.fixture
def backend(backend_kind: BackendKind) -> SessionStore:
    return backend_kind.client()


@pytest.fixture
def store(backend_kind: BackendKind) -> Iterator[Store]:
    made = Store(backend_kind.client())
    yield made
    made.close()


def _info(session_id: str, *, minutes: int = 0, **fields: Any) -> SessionInfo:
    when = T0 + timedelta(minutes=minutes)
    return SessionInfo(id=session_id, created_at=when, updated_at=when, **fields)


def _event(session_id: str, seq: int, **fields: Any) -> SessionEvent:
    defaults: dict[str, Any] = {
        "type": EventType.MESSAGE,
        "source": EventSource.USER,
        "role": Role.USER,
        "content": f"message {seq}",
    }
    return SessionEvent(
        id=uuid.uuid4().hex,
        session_id=session_id,
        seq=seq,
        timestamp=T0 + timedelta(seconds=seq),
        **{**defaults, **fields},
    )


@pytest.fixture
def info() -> Callable[..., SessionInfo]:
    """``info(id, minutes=0, **fields)``: a session header created ``minutes`` after T0."""
    return _info


@pytest.fixture
def event() -> Callable[..., SessionEvent]:
    """``event(session_id, seq, **fields)``: a user message event unless fields say otherwise."""
    return _event
