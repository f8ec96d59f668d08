"""LiteLLM for the adapter tests: imported with its bundled price map, callbacks reset."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapter_support import calls

from sessionware.adapters.api import settle
from sessionware.core.session.models import SessionEvent
from sessionware.core.store import Store

# LiteLLM reads this once, when it is first imported (by this module's importers, through
# ``sessionware.adapters.litellm``): its price map then comes from the wheel, offline.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "input_callback",
)


def import_litellm() -> Any:
    """``litellm``, imported offline: its price map from the wheel, not the network."""
    return importlib.import_module("litellm")


@contextmanager
def clean_litellm() -> Iterator[Any]:
    """The real ``litellm`` module, its callback lists emptied before and restored after."""
    module = import_litellm()
    saved = {name: list(getattr(module, name)) for name in CALLBACK_LISTS}
    for name in CALLBACK_LISTS:
        getattr(module, name).clear()
    try:
        yield module
    finally:
        for name in CALLBACK_LISTS:
            getattr(module, name)[:] = saved[name]


def all_events(store: Store) -> dict[str, list[SessionEvent]]:
    assert settle()
    store.flush()
    return {info.id: store.load(info.id).events for info in store.list_sessions()}


def recorded_calls(store: Store) -> list[SessionEvent]:
    return [e for events in all_events(store).values() for e in calls(events)]


def wait_for_calls(store: Store, count: int, timeout: float = 20.0) -> dict[str, list[SessionEvent]]:
    """The store's sessions once ``count`` calls are recorded (LiteLLM's sync success
    events run on its own logging threads, after the call has returned)."""
    deadline = time.monotonic() + timeout
    while True:
        events = all_events(store)
        found = sum(len(calls(e)) for e in events.values())
        if found >= count or time.monotonic() > deadline:
            assert found == count, f"expected {count} recorded calls, found {found}"
            return events
        time.sleep(0.02)


async def await_calls(store: Store, count: int, timeout: float = 20.0) -> dict[str, list[SessionEvent]]:
    """``wait_for_calls`` from a coroutine: LiteLLM's async events run on this loop."""
    deadline = time.monotonic() + timeout
    while True:
        events = all_events(store)
        found = sum(len(calls(e)) for e in events.values())
        if found >= count or time.monotonic() > deadline:
            assert found == count, f"expected {count} recorded calls, found {found}"
            return events
        await asyncio.sleep(0.02)
