"""The examples in the adapters' docstrings run and show what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "sessionware.adapters.api",
        "sessionware.adapters.scope",
        "sessionware.adapters.engine.guard",
        "sessionware.adapters.fakes",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)

    assert result.attempted > 0
    assert result.failed == 0
