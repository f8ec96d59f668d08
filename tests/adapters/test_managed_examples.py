"""The managed-mode examples run offline, recall through a hidden round and report it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each test starts interpreters of its own.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_openai_example_recalls_an_evicted_fact_in_a_hidden_round() -> None:
    out = run("managed_openai.py")

    assert "assistant: The shed key is in locker B-317." in out
    assert "1 hidden round(s), 1 memory call(s)" in out
    assert "page faults 1" in out


def test_the_anthropic_example_streams_only_the_final_answer() -> None:
    out = run("managed_anthropic.py")

    assert "assistant: Your wheel is order 482913." in out
    assert "(1 memory call served in a hidden round)" in out
