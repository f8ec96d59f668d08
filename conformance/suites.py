"""Which parts of each SDK's suite the conformance run runs, and how.

A part is a set of test paths (files, folders or node ids) of one SDK's source release.
``fast`` parts are what CI runs on every submission; the full run runs the others (the
full ``tests/`` without ``api_resources`` includes the fast Anthropic subset, so the fast
one is not run twice).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

__all__ = ["PARTS", "Mode", "Part", "RunResult", "run_modes", "run_part"]

PLUGIN_DIR = Path(__file__).parent / "plugin"
RUN_TIMEOUT_S = 3600.0


class Mode(StrEnum):
    BARE = "bare"
    PRODUCTION = "production"
    STRICT = "strict"


@dataclass(frozen=True)
class Part:
    sdk: str
    name: str
    paths: tuple[str, ...]
    ignore: tuple[str, ...] = ()
    fast: bool = False
    full: bool = True
    needs_mock: bool = False


PARTS: tuple[Part, ...] = (
    # CI's part of OpenAI's suite, on the same rule as Anthropic's below (openai 3.x's whole
    # tests/ holds 13,000 tests, most of them realtime and websockets: the full run's).
    Part(
        "openai",
        "client, responses, streams, chat helpers",
        (
            "tests/test_client.py",
            "tests/test_response.py",
            "tests/test_legacy_response.py",
            "tests/test_streaming.py",
            "tests/lib/chat",
        ),
        fast=True,
        full=False,
    ),
    Part("openai", "tests/ without api_resources", ("tests",), ("tests/api_resources",)),
    Part("openai", "tests/api_resources (mock server)", ("tests/api_resources",), needs_mock=True),
    # CI's part of Anthropic's suite: what goes through the methods sessionware hooks
    # (the client's retries, timeouts and raw responses, response and stream classes, the
    # messages stream helpers, the spans of calls with their dropped streams). The rest
    # of lib/ (credentials, cloud platforms, tool runners, threads) is in the full run.
    Part(
        "anthropic",
        "client, responses, streams, call spans",
        (
            "tests/test_client.py",
            "tests/test_response.py",
            "tests/test_streaming.py",
            "tests/lib/streaming",
            "tests/test_open_telemetry.py::TestCallSpans",
        ),
        fast=True,
        full=False,
    ),
    Part("anthropic", "tests/ without api_resources", ("tests",), ("tests/api_resources",)),
)


@dataclass
class RunResult:
    mode: Mode
    outcomes: dict[str, str]
    seconds: float
    cpu_seconds: float = 0.0
    internal_errors: int = 0
    last_error: str | None = None
    exit_code: int = 0
    log: Path | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)


def _uses_xdist(tree: Path) -> bool:
    try:
        config = tomllib.loads((tree / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    addopts = config.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("addopts", "")
    return " -n " in f" {addopts} "


def _run_measured(
    args: list[str], cwd: Path, env: dict[str, str], out: IO[str], timeout: float
) -> tuple[int, float]:
    """Run ``args``; its exit code (-1 when killed after ``timeout`` s) and the CPU seconds it
    and the processes it waited for (the xdist workers) used: a figure that, unlike the wall
    clock, does not grow when other work shares the machine."""
    # Its own process group, so a kill takes its xdist workers and subprocesses with it.
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:  # Ctrl-C reaches our group only: the run's goes down with us
        kill()
        process.wait()
        raise
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return (-1 if timed_out.is_set() else process.returncode), usage.ru_utime + usage.ru_stime


def _read_outcomes(out: Path) -> tuple[dict[str, str], int, str | None]:
    """The outcomes the plugin wrote to ``out`` (from ``out.partial`` when the run was killed
    before it could: the tests it finished), and the internal errors its processes counted."""
    outcomes: dict[str, str] = {}
    errors, last_error = 0, None
    if out.exists():
        outcomes = dict(json.loads(out.read_text()).get("outcomes", {}))
    else:
        partial = out.with_name(f"{out.name}.partial")
        if partial.exists():
            for line in partial.read_text().splitlines():
                try:
                    test, outcome = json.loads(line)
                except ValueError:
                    continue  # the line being written when the run was killed
                outcomes[test] = outcome  # each line is the test's worst outcome so far
    for path in sorted(out.parent.glob(f"{out.name}*")):
        if path.suffix == ".partial":
            continue
        try:
            summary: dict[str, Any] = json.loads(path.read_text())
        except ValueError:
            continue
        errors += int(summary.get("internal_errors", 0))
        last_error = summary.get("last_error") or last_error
    return outcomes, errors, last_error


def run_part(
    part: Part,
    tree: Path,
    mode: Mode,
    logs: Path,
    *,
    extra_env: dict[str, str],
    workers: int,
    timeout: float = RUN_TIMEOUT_S,
) -> RunResult:
    """Run ``part`` of the suite in ``tree`` in ``mode`` (with ``workers`` xdist workers when
    the suite uses xdist; 0: in one process), killed after ``timeout`` seconds."""
    slug = "".join(c if c.isalnum() else "-" for c in f"{tree.name}-{part.name}-{mode}").strip("-")
    out = logs / f"{slug}.json"
    log = logs / f"{slug}.log"
    for stale in logs.glob(f"{out.name}*"):  # a run of the same part before, in a reused folder
        stale.unlink()
    args = [sys.executable, "-m", "pytest", *part.paths, *(f"--ignore={p}" for p in part.ignore)]
    # The suites mostly wait (retry back-offs, timeouts): workers beyond the cores help.
    if _uses_xdist(tree):
        args += ["-n", str(workers)]
    # A module that cannot be imported costs its own tests, not the whole run's.
    args += ["-p", "sessionware_conformance", "-p", "no:cacheprovider", "-q", "--tb=short"]
    args += ["--continue-on-collection-errors"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARE_")}
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH")]))
    env["SESSIONWARE_CONFORMANCE_MODE"] = mode.value
    env["SESSIONWARE_CONFORMANCE_OUT"] = str(out)
    if mode is Mode.STRICT:
        env["SESSIONWARE_STRICT"] = "1"
    started = time.monotonic()
    with log.open("w") as handle:
        code, cpu = _run_measured(args, tree, env, handle, timeout)
    seconds = time.monotonic() - started
    outcomes, errors, last_error = _read_outcomes(out)
    return RunResult(
        mode=mode,
        outcomes=outcomes,
        seconds=seconds,
        cpu_seconds=cpu,
        internal_errors=errors,
        last_error=last_error,
        exit_code=code,
        log=log,
    )


def run_modes(
    part: Part,
    tree: Path,
    modes: list[Mode],
    logs: Path,
    *,
    extra_env: dict[str, str],
    jobs: int,
    workers: int,
    timeout: float = RUN_TIMEOUT_S,
    say: Callable[[str], None] = print,
) -> dict[Mode, RunResult]:
    """Run ``part`` in each of ``modes``, ``jobs`` of them side by side (the suites mostly
    wait: retry back-offs, timeouts), each logged into ``logs``."""
    results: dict[Mode, RunResult] = {}

    def run_one(mode: Mode) -> None:
        results[mode] = result = run_part(
            part, tree, mode, logs, extra_env=extra_env, workers=workers, timeout=timeout
        )
        say(
            f"  {mode.value}: {result.count('passed')} passed, {result.count('failed')} failed, "
            f"{result.count('error')} errors, {result.count('skipped')} skipped "
            f"in {result.seconds:.0f} s, {result.cpu_seconds:.0f} CPU-s (log: {result.log})"
        )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run_one, modes))
    return results
