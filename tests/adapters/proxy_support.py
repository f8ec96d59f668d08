"""A real LiteLLM proxy process (several workers) in front of the fake upstream API.

The proxy is the ``litellm`` command of the venv, with a YAML config and the hook file
``sessionware_hook.py`` written to a temporary folder; the upstream is
``sessionware.adapters.litellm.fake_upstream`` on 127.0.0.1. Start-up costs seconds
(each worker imports LiteLLM), so tests start one proxy per module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MASTER_KEY = "sk-sessionware-test"
_START_SECONDS = 300.0

HOOK_FILE = """\
from sessionware.adapters.litellm.proxy import ProxyHook

hook = ProxyHook.from_env()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    """A running proxy; ``stop()`` ends all its processes."""

    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, upstream: str, *, store: str | None, workers: int = 2) -> Proxy:
        """A proxy with ``workers`` workers; ``store=None`` runs it without the hook."""
        folder = Path(tempfile.mkdtemp(prefix="sessionware-proxy-"))
        (folder / "config.yaml").write_text(
            proxy_config(upstream, hook=store is not None, dead_port=free_port())
        )
        (folder / "sessionware_hook.py").write_text(HOOK_FILE)
        port = free_port()
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "SESSIONWARE_STORE": store or "memory://",
            "PYTHONPATH": str(folder),
        }
        env.pop("SESSIONWARE_STRICT", None)
        litellm = Path(sys.executable).with_name("litellm")
        log = open(folder / "proxy.log", "wb")  # noqa: SIM115 - the proxy writes it until stop()
        process = subprocess.Popen(
            [
                str(litellm), "--config", str(folder / "config.yaml"), "--host", "127.0.0.1",
                "--port", str(port), "--num_workers", str(workers), "--timeout_worker_healthcheck", "300",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True,
        )  # fmt: skip
        log.close()
        proxy = cls(process=process, port=port, folder=folder)
        try:
            proxy._wait_ready(workers)
        except BaseException:
            proxy.stop()
            raise
        return proxy

    def _wait_ready(self, workers: int) -> None:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited at start:\n{self.log_tail()}")
            started = self.log().count("Application startup complete")
            if started >= workers and self._alive():
                return
            time.sleep(0.5)
        raise RuntimeError(f"the proxy did not start within {_START_SECONDS:.0f} s:\n{self.log_tail()}")

    def _alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health/liveliness", timeout=5) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        try:
            return (self.folder / "proxy.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def worker_pids(self) -> set[int]:
        return {int(pid) for pid in _started_pids(self.log())}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _started_pids(log: str) -> list[str]:
    marker = "Started server process ["
    return [line.split(marker, 1)[1].split("]", 1)[0] for line in log.splitlines() if marker in line]


def openai_client(proxy: Proxy, **options: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key=MASTER_KEY, max_retries=0, **options)


def anthropic_client(proxy: Proxy, **options: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=proxy.base_url, api_key=MASTER_KEY, max_retries=0, **options)
