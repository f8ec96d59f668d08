"""A redis-server of a test's own, to kill and restart (the shared one must stay up).

It listens on a Unix socket in the test's folder, not a TCP port: a port freed by a kill
could be taken by another program before the restart, and the writers would go on
talking to a server that is not this one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


class RedisProcess:
    """``redis-server`` on a free port; ``persistent`` keeps an append-only file synced on
    every write (what an acknowledged write survives), else a restart starts empty."""

    def __init__(self, workdir: Path, *, persistent: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("SESSIONWARE_REQUIRE_REDIS"):
                pytest.fail("redis-server is required (SESSIONWARE_REQUIRE_REDIS is set) but not installed")
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.persistent = persistent
        self.socket = workdir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                *(self.binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"),
                *("--save", "", *durability, "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.settimeout(0.2)
                    probe.connect(str(self.socket))
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail("redis-server did not start")

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
