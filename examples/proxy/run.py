"""The whole set-up in one command, offline: a fake provider API, a LiteLLM proxy with two
workers recording into one SQLite file through sessionware's hook, an app behind it, and
the sessions it left.

    python examples/proxy/run.py [--managed] [path/to/proxy.db]

``--managed`` runs the proxy in managed mode (``SESSIONWARE_MODE=managed``,
``SESSIONWARE_BUDGET=1500``) and a long conversation whose context the proxy builds.

What it runs, step by step (each step is what you would run yourself):

1. ``python -m sessionware.adapters.litellm.fake_upstream --port 8011`` (here in-process):
   the OpenAI and Anthropic APIs, offline;
2. ``SESSIONWARE_STORE=sqlite:///proxy.db litellm --config examples/proxy/config.yaml
   --num_workers 2``: the proxy, whose config names the hook in ``sessionware_hook.py``;
3. ``python examples/proxy/client.py``: an app using the openai and anthropic SDKs;
4. ``sessionware --store sqlite:///proxy.db sessions``: what was recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: LiteLLM's bundled prices
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client import main as run_client  # noqa: E402
from client import managed_demo  # noqa: E402

from sessionware.adapters.litellm.fake_upstream import FakeUpstream  # noqa: E402
from sessionware.adapters.litellm.launch import ProxyProcess  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    managed = "--managed" in args
    args = [a for a in args if a != "--managed"]
    db = Path(args[0]) if args else Path(tempfile.mkdtemp()) / "proxy.db"
    store = f"sqlite:///{db.resolve()}"
    upstream = FakeUpstream(port=8011).start()
    log = Path(tempfile.mkdtemp()) / "proxy.log"
    print("starting the proxy (two workers, each importing LiteLLM: a few seconds)...")
    settings = {"SESSIONWARE_STORE": store}
    if managed:
        settings |= {"SESSIONWARE_MODE": "managed", "SESSIONWARE_BUDGET": "1500"}
    proxy = ProxyProcess.start(HERE / "config.yaml", workers=2, env=settings, log_path=log)
    try:
        (managed_demo if managed else run_client)(proxy.base_url)
    finally:
        proxy.stop()  # its workers flush what they recorded as they exit
        upstream.stop()
    sessionware = Path(sys.executable).with_name("sessionware")
    subprocess.run([str(sessionware), "--store", store, "sessions"], check=True)
    shown = "archive-1" if managed else "ticket-44"
    subprocess.run([str(sessionware), "--store", store, "show", shown], check=True)


if __name__ == "__main__":
    main()
