"""``examples/tools_chuk.py`` runs offline: a wrapped model, a wrapped chuk ``ToolProcessor``
running one tool in a worker process and one from an MCP stdio server it starts itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("chuk_tool_processor")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tools_chuk.py"


def test_every_tool_execution_shows_up_in_the_session_with_its_timing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SESSIONWARE_STORE")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "tools.db")],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "assistant: Lisbon has about 545,000 inhabitants; 1517 = 37 x 41." in out
    factorize = re.search(r"call_0 factorize\(\{\"n\": 1517\}\) -> \{.*\"pid\": (\d+)\} in [\d.]+ ms", out)
    assert factorize is not None, out
    assert re.search(
        r"call_1 city_population\(\{\"city\": \"Lisbon\"\}\) -> \{\"city\": \"Lisbon\", \"popul", out
    )
    assert "llm_calls=2 tool_calls=2 errors=0" in out
    timeline = out.split("-- ", 1)[1]
    # sessionware show: each tool call with its timing, and no edited history.
    assert len(re.findall(r"tool call   .*\[call_\d\]", timeline)) == 2
    assert len(re.findall(r"^\s+[\d.]+ ms$", timeline, flags=re.MULTILINE)) == 2
    assert "branch" not in timeline
    # The tool ran in a worker process, not in the example's own.
    app = re.search(r"this script is process (\d+)", out)
    assert app is not None and app.group(1) != factorize.group(1)
