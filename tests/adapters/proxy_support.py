"""A real LiteLLM proxy process (several workers) in front of the fake upstream API.

The proxy is the ``litellm`` command of the venv (``sessionware.adapters.litellm.launch``),
with a YAML config and the hook file ``sessionware_hook.py`` written to a temporary
folder; the upstream is ``sessionware.adapters.litellm.fake_upstream`` on 127.0.0.1.
Start-up costs seconds (each worker imports LiteLLM), so tests start one proxy per module.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionware.adapters.litellm.launch import ProxyProcess, free_port

MASTER_KEY = "sk-sessionware-test"

HOOK_FILE = """\
from sessionware.adapters.litellm.proxy import ProxyHook

hook = ProxyHook.from_env()
"""


def proxy_config(upstream: str, *, hook: bool, dead_port: int) -> str:
    """Models on the fake upstream, a ``flaky`` group that falls back to ``gpt-4o-mini``."""
    dead = f"http://127.0.0.1:{dead_port}/v1"
    lines = [
        "model_list:",
        "  - model_name: gpt-4o-mini",
        f"    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{upstream}/v1', api_key: offline}}",
        "  - model_name: claude-haiku-4-5",
        f"    litellm_params: {{model: anthropic/claude-haiku-4-5, api_base: '{upstream}',"
        " api_key: offline}",
        "  - model_name: flaky",
        f"    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{dead}', api_key: offline}}",
        "router_settings:",
        "  num_retries: 0",
        "  fallbacks: [{flaky: [gpt-4o-mini]}]",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
    ]
    if hook:
        lines += ["litellm_settings:", "  callbacks: sessionware_hook.hook"]
    return "\n".join(lines) + "\n"


@dataclass
class Proxy:
    """A proxy on a temporary folder with its config and hook file; ``stop()`` removes it."""

    running: ProxyProcess
    folder: Path

    @property
    def base_url(self) -> str:
        return self.running.base_url

    @classmethod
    def start(
        cls, upstream: str, *, store: str | None, workers: int = 2, env: dict[str, str] | None = None
    ) -> Proxy:
        """A proxy with ``workers`` workers; ``store=None`` runs it without the hook; ``env``
        adds to its environment (``SESSIONWARE_MODE``...)."""
        folder = Path(tempfile.mkdtemp(prefix="sessionware-proxy-"))
        config = folder / "config.yaml"
        config.write_text(proxy_config(upstream, hook=store is not None, dead_port=free_port()))
        (folder / "sessionware_hook.py").write_text(HOOK_FILE)
        # Not measured by coverage (make test measures the interpreters tests start): under
        # its tracer a proxy's three processes took 64.6 s of CPU to start instead of 35.9 s
        # (one run each, load ~10); proxy.py showed 38 % covered with them measured (last CI run).
        unmeasured = {"COVERAGE_PROCESS_CONFIG": "", "COVERAGE_PROCESS_START": ""}
        try:
            running = ProxyProcess.start(
                config,
                workers=workers,
                env={**unmeasured, "SESSIONWARE_STORE": store or "memory://", **(env or {})},
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(running=running, folder=folder)

    def stop(self) -> None:
        self.running.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def openai_client(proxy: Proxy, **options: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key=MASTER_KEY, max_retries=0, **options)


def anthropic_client(proxy: Proxy, **options: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=proxy.base_url, api_key=MASTER_KEY, max_retries=0, **options)
