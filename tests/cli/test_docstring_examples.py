"""The examples in the command line's docstrings run and show what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["sessionware.cli.render", "sessionware.cli.export"])
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)

    assert result.attempted > 0
    assert result.failed == 0
