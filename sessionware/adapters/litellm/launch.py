"""Start a LiteLLM proxy process (the ``litellm`` command of this Python) and stop it.

For examples, tests and benchmarks that need a real proxy with several workers on
127.0.0.1. A worker imports LiteLLM (seconds), so the proxy is given that long to
report every worker started; ``stop()`` ends the whole process group.

>>> proxy = ProxyProcess.start("config.yaml", workers=2)  # doctest: +SKIP
>>> proxy.base_url  # doctest: +SKIP
'http://127.0.0.1:40123'
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProxyProcess", "free_port"]

START_SECONDS = 300.0
_STARTED = "Application startup complete"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProxyProcess:
    """A running proxy: ``base_url``, its output in ``log_path``."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        config: str | Path,
        *,
        workers: int = 2,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        log_path: str | Path | None = None,
        timeout: float = START_SECONDS,
    ) -> ProxyProcess:
        """Start ``litellm --config config`` with ``workers`` workers, from the config's
        folder (where LiteLLM finds the hook file the config names); wait until every
        worker serves. ``env`` is added to this process's environment."""
        config = Path(config).resolve()
        port = port or free_port()
        log = Path(log_path) if log_path is not None else config.with_name(f"proxy-{port}.log")
        command = [
            str(Path(sys.executable).with_name("litellm")),
            "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", str(workers), "--timeout_worker_healthcheck", str(int(timeout)),
        ]  # fmt: skip
        environment = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", **os.environ, **(env or {})}
        folder = str(config.parent)
        environment["PYTHONPATH"] = os.pathsep.join(p for p in (folder, environment.get("PYTHONPATH")) if p)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=folder,
                start_new_session=True,
            )
        proxy = cls(process=process, port=port, log_path=log)
        try:
            proxy._wait_ready(workers, timeout)
        except BaseException:
            proxy.stop()
            raise
        return proxy

    def _wait_ready(self, workers: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the LiteLLM proxy exited at start:\n{self.log_tail()}")
            if self.log().count(_STARTED) >= workers and self._alive():
                return
            time.sleep(0.25)
        raise RuntimeError(f"the LiteLLM proxy did not start within {timeout:.0f} s:\n{self.log_tail()}")

    def _alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health/liveliness", timeout=5) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def stop(self) -> None:
        """End the proxy and its workers (SIGTERM to the group, SIGKILL after 30 s)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
