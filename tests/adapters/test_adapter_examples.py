"""The wrapped-client examples run offline and report what they recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each test starts interpreters of its own.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_openai_demo_records_a_tool_round_trip_and_a_stream_into_sqlite(tmp_path: Path) -> None:
    out = run("wrap_openai.py", str(tmp_path / "demo.db"))

    assert "assistant: It's sunny in Lisbon, up to 24 °C." in out
    assert "llm_calls=3 messages=6 tool_calls=1" in out
    assert "[provider]" in out
    assert "reloaded from disk: 7 events, 3 calls" in out
    assert (tmp_path / "demo.db").exists()


@pytest.mark.filterwarnings("ignore")
def test_the_anthropic_demo_records_two_concurrent_scoped_sessions() -> None:
    out = run("wrap_anthropic.py")

    assert "ticket-17 {'customer': 'ana', 'channel': 'chat'}: 1 calls" in out
    assert "ticket-18 {'customer': 'ben', 'channel': 'email'}: 2 calls, 1 tool results" in out
    assert "cache read 300" in out
