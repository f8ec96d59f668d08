"""Fixtures of the tool tests: a registry of real tools and a counter of their executions."""

from __future__ import annotations

import pytest
from tool_support import Calls, build_registry

from sessionware.core.tools import ToolRegistry


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def registry(calls: Calls) -> ToolRegistry:
    return build_registry(calls)
