"""Per-call cost of the tool engine against the in-house executor it replaced, in one run.

Tool calls used to run through sessionware's own ``ToolExecutor`` (``core/tools/executor.py``,
deleted when chuk-tool-processor became the engine; ``BEFORE`` is the last commit that has
it). This script exports that revision's package (``git archive``) to a temporary folder
and times both in the same run, in child processes that alternate (old, new, old, new...)
so drift on a shared machine hits both alike:

* **execution of one call**: the old ``ToolExecutor.execute_one`` against the new
  ``EngineExecutor.run`` (a ``ToolProcessor.execute`` with sessionware's retry layer),
  an async ``add`` tool, same arguments;
* **``ToolRunner.run`` of a one-call message**, no session, no guards: everything the
  runner does around the execution (parsing, screening, validation, bindings, ledger).

Medians of 3,000 calls per process after a warm-up, then the median over the processes.

    python benchmarks/tool_engines.py              # 4 pairs of processes
    python benchmarks/tool_engines.py --pairs 2    # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BEFORE = "c60cea3"
ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, gc, json, statistics, time
from sessionware.core.tools import ToolInvocation, ToolRegistry, ToolRunner

async def add(a: int, b: int) -> int:
    return a + b

def message(i):
    function = {"name": "add", "arguments": json.dumps({"a": i, "b": 1})}
    call = {"id": f"c{i}", "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}

async def main():
    registry = ToolRegistry()
    registry.register(add)
    runner = ToolRunner(registry, guards=())
    old = hasattr(runner, "executor")
    execute = runner.executor.execute_one if old else runner.engine().run
    for i in range(300):
        await runner.run(None, message(i))
        await execute(ToolInvocation(id=f"w{i}", name="add", arguments={"a": i, "b": 1}))
    executions, runs = [], []
    gc.collect()
    for i in range(3000):
        call = ToolInvocation(id=f"x{i}", name="add", arguments={"a": i, "b": 1})
        started = time.perf_counter()
        await execute(call)
        executions.append(time.perf_counter() - started)
        started = time.perf_counter()
        await runner.run(None, message(i))
        runs.append(time.perf_counter() - started)
    print(json.dumps({"old": old, "execute": statistics.median(executions), "run": statistics.median(runs)}))

asyncio.run(main())
"""


def export(revision: str, into: Path) -> Path:
    """The ``sessionware`` package as it was at ``revision``, unpacked under ``into``."""
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision, "sessionware"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def child(pythonpath: Path | None) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if bool(figures["old"]) != (pythonpath is not None):
        raise RuntimeError(f"the child ran the wrong tree: {figures}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="pairs of child processes (old, new)")
    parser.add_argument("--before", default=BEFORE, help="the revision with the in-house executor")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        before = export(args.before, Path(folder))
        runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for _ in range(args.pairs):
            runs["old"].append(child(before))
            runs["new"].append(child(None))

    def median(which: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[which])

    print(f"{args.pairs} pairs of processes, 3,000 calls each (medians)")
    for which, label in (("old", f"in-house executor ({args.before})"), ("new", "chuk-tool-processor")):
        print(
            f"{label:<34} one call {median(which, 'execute') * 1e6:7.1f} us;"
            f"  ToolRunner.run of a one-call message {median(which, 'run') * 1e6:7.1f} us"
        )
    print(
        f"engine / in-house executor, per call: {median('new', 'execute') / median('old', 'execute'):.2f}x;"
        f"  ToolRunner.run: {median('new', 'run') / median('old', 'run'):.2f}x"
    )
    pairs = zip(runs["old"], runs["new"], strict=True)
    spread = ", ".join(f"{new['execute'] / old['execute']:.1f}x" for old, new in pairs)
    print(f"per pair, per call: {spread} (a pair's processes ran one after the other)")


if __name__ == "__main__":
    main()
