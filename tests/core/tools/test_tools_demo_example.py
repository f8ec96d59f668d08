"""``examples/tools_demo.py`` runs offline and shows what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[3] / "examples" / "tools_demo.py"


@pytest.mark.slow
def test_the_tools_demo_runs_and_shows_the_fix_the_guards_and_the_reload(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), str(tmp_path / "demo.db")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "call_w1 get_weather({'city': 'Pariss', 'unit': 'F'}) -> error" in out
    # "$v1" reached the tool as the int it was bound to, not as the text "1517.0".
    assert "call_s1 sqrt({'x': 1517}) -> success binding=$v2" in out
    assert "call_w3 get_weather({'city': 'Oslo'}) -> blocked guard=budget" in out
    assert "warning: ungrounded: `divide` got numbers that appear nowhere earlier" in out
    after_reload = out.split("procedural memory after reload:")[1]
    assert '(fixed: change city "Pariss" -> "Paris")' in after_reload
    assert "tool_calls=6 llm_calls=4" in out
    assert (tmp_path / "demo.db").exists()
