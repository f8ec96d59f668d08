"""Real openai/anthropic clients whose only fake part is the HTTP transport."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from adapter_support import make_anthropic, make_openai
from litellm_support import clean_litellm

import sessionware
from sessionware.adapters.api import settle
from sessionware.adapters.engine import guard
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI
from sessionware.core.store import MemoryBackend, Store


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(MemoryBackend())
    yield s
    s.close()


@pytest.fixture
def openai_api() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def anthropic_api() -> FakeAnthropic:
    return FakeAnthropic()


@pytest.fixture
def lenient() -> Iterator[None]:
    """Bookkeeping failures are swallowed, as in production (tests are strict by default)."""
    guard.set_strict(False)
    yield
    guard.set_strict(None)


@pytest.fixture
def openai_client(openai_api: FakeOpenAI, store: Store) -> Any:
    """A wrapped sync OpenAI client recording into ``store``."""
    return sessionware.wrap(make_openai("OpenAI", openai_api), store=store)


@pytest.fixture
def async_openai_client(openai_api: FakeOpenAI, store: Store) -> Any:
    return sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)


@pytest.fixture
def anthropic_client(anthropic_api: FakeAnthropic, store: Store) -> Any:
    return sessionware.wrap(make_anthropic("Anthropic", anthropic_api), store=store)


@pytest.fixture
def async_anthropic_client(anthropic_api: FakeAnthropic, store: Store) -> Any:
    return sessionware.wrap(make_anthropic("AsyncAnthropic", anthropic_api), store=store)


@pytest.fixture(autouse=True)
def recorder_failures_surface() -> Iterator[None]:
    """A bookkeeping failure of the recorder thread fails the test that caused it."""
    yield
    assert settle()


# The newest-SDK environment (``make test-latest``) has no LiteLLM: its test modules
# (``test_litellm_*.py``) are left out there, and said so in the header.
HAS_LITELLM = find_spec("litellm") is not None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not HAS_LITELLM and (
        collection_path.name.startswith("test_litellm_") or collection_path.name == "test_otel_litellm.py"
    ):
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    return None if HAS_LITELLM else "LiteLLM is not installed: tests/adapters/test_litellm_*.py are skipped"


@pytest.fixture
def litellm() -> Iterator[Any]:
    """The real ``litellm`` module, its callbacks and patches restored after the test (the
    test skips where LiteLLM is not installed)."""
    pytest.importorskip("litellm", reason="LiteLLM is not installed in this environment")
    with clean_litellm() as module:
        yield module


@pytest.fixture
def no_internal_errors() -> Iterator[None]:
    """Fail the test if sessionware reported a bookkeeping failure during it."""
    before = guard.health().internal_errors
    yield
    assert guard.health().internal_errors == before, guard.health().last_error
