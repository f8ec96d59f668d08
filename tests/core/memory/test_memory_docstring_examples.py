"""The examples in the memory package's docstrings run and show what they claim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sessionware.core.memory as memory_package

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(memory_package.__path__, f"{memory_package.__name__}.")
)


def test_the_package_has_modules_to_check() -> None:
    assert "sessionware.core.memory.builder" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
