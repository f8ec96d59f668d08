"""The OpenAI mock server (Prism, from the npm registry) for OpenAI's ``tests/api_resources``.

Those tests call every endpoint against a server on 127.0.0.1:4010 that answers from the
API's OpenAPI description. The source release ships no copy of that description, so the
run needs one given (``--openapi-spec`` or ``$SESSIONWARE_OPENAI_SPEC``), and Node with
npm to install Prism into the cache. Without either, the part is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MOCK_START_S", "MOCK_URL", "MockUnavailable", "mock_server"]

HOST, PORT = "127.0.0.1", 4010
MOCK_URL = f"http://{HOST}:{PORT}"
PRISM = "@stoplight/prism-cli@5"
# Prism reads and dereferences the whole 3 MB description before it listens: 2 min on an
# idle core, over 10 min at nice 19 on a 2-core machine at load 16.
MOCK_START_S = 1200.0


class MockUnavailable(RuntimeError):
    """Why the mock server cannot run here (the part is skipped with this reason)."""


def _prism(cache: Path) -> Path:
    prefix = cache / "prism"
    binary = prefix / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise MockUnavailable("node and npm are not installed")
    print(f"installing {PRISM} from the npm registry", flush=True)
    done = subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), PRISM],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.exists():
        raise MockUnavailable(f"npm could not install {PRISM}: {done.stderr[-400:]}")
    return binary


def _port_open() -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, PORT)) == 0


@contextmanager
def mock_server(cache: Path, spec: str | None, *, start_timeout: float = MOCK_START_S) -> Iterator[str]:
    """Run Prism on ``spec`` for the block (given ``start_timeout`` s to listen); yields its base URL."""
    spec = spec or os.environ.get("SESSIONWARE_OPENAI_SPEC")
    if not spec:
        raise MockUnavailable(
            "the source release ships no OpenAPI description of the API; give one with --openapi-spec"
        )
    if not Path(spec).is_file():
        raise MockUnavailable(f"no OpenAPI description at {spec}")
    if _port_open():
        raise MockUnavailable(f"{HOST}:{PORT} is already taken")
    binary = _prism(cache)
    log = (cache / "prism.log").open("w")
    server = subprocess.Popen(
        [str(binary), "mock", spec, "-h", HOST, "-p", str(PORT)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        started = time.monotonic()
        while not _port_open():
            if server.poll() is not None:
                raise MockUnavailable(f"Prism exited ({server.returncode}; see {cache / 'prism.log'})")
            if time.monotonic() - started > start_timeout:
                raise MockUnavailable(
                    f"Prism did not listen within {start_timeout:.0f} s: --mock-start-timeout "
                    f"(see {cache / 'prism.log'})"
                )
            time.sleep(0.5)
        print(f"Prism listening after {time.monotonic() - started:.0f} s", flush=True)
        yield MOCK_URL
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
