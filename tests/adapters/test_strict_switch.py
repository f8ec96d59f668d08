"""Strict mode is an explicit switch (``SESSIONWARE_STRICT``), never inferred."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sessionware.adapters.engine import guard

PROBE = "import pytest\nfrom sessionware.adapters.engine.guard import is_strict\nprint(is_strict())\n"


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARE_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_plain_process_that_imports_pytest_is_not_strict():
    assert _probe() == "False"


@pytest.mark.parametrize(
    ("value", "expected"), [("1", "True"), ("true", "True"), ("0", "False"), ("", "False")]
)
def test_the_environment_variable_turns_it_on(value: str, expected: str):
    assert _probe(SESSIONWARE_STRICT=value) == expected


def test_our_suite_runs_strict_through_the_switch():
    assert os.environ.get(guard.STRICT_ENV) == "1"
    assert guard.is_strict()


def test_set_strict_wins_over_the_switch_until_reset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(guard.STRICT_ENV, "1")
    guard.set_strict(False)
    try:
        assert not guard.is_strict()
    finally:
        guard.set_strict(None)
    assert guard.is_strict()
    monkeypatch.setenv(guard.STRICT_ENV, "0")
    assert not guard.is_strict()
