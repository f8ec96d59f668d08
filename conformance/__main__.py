"""``python -m conformance [--fast] [--sdk openai] [--modes bare,production,strict]``.

Exit status: 0 when no test that passes bare fails under sessionware, 1 otherwise, 2 when
a suite could not run at all.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conformance.mock_server import MockUnavailable, mock_server
from conformance.sources import SourceError, cache_dir, installed_version, source_tree
from conformance.suites import PARTS, RUN_TIMEOUT_S, Mode, Part, RunResult, run_part


def _differences(bare: RunResult, other: RunResult) -> dict[str, str]:
    """Tests that pass bare and not in ``other`` (``missing`` when they did not run)."""
    return {
        test: other.outcomes.get(test, "missing")
        for test, outcome in bare.outcomes.items()
        if outcome == "passed" and other.outcomes.get(test) != "passed"
    }


def _exit_note(result: RunResult) -> str:
    if result.exit_code == -1:
        return f" (killed after {result.seconds:.0f} s: --run-timeout)"
    return f" (pytest exit {result.exit_code})" if result.exit_code not in (0, 1) else ""


def _time(result: RunResult) -> str:
    return f"{result.seconds:.0f} s, {result.cpu_seconds:.0f} CPU-s"


def _cell(bare: RunResult, other: RunResult) -> str:
    lost = _differences(bare, other)
    gained = sum(1 for t, o in other.outcomes.items() if o == "passed" and bare.outcomes.get(t) != "passed")
    text = (
        f"{other.count('passed')} pass"
        if not lost
        else f"**{len(lost)} differ** ({other.count('passed')} pass)"
    )
    if gained:
        text += f", {gained} pass only here"
    if other.internal_errors:
        text += f", {other.internal_errors} internal errors"
    text += _exit_note(other)
    return f"{text} [{_time(other)}]"


def _bare_cell(bare: RunResult) -> str:
    failed = bare.count("failed") + bare.count("error")
    text = f"{bare.count('passed')} pass"
    if failed:
        text += f" ({failed} fail bare)"
    text += _exit_note(bare)
    return f"{text} [{_time(bare)}]"


def _run(part: Part, modes: list[Mode], args: argparse.Namespace, cache: Path, logs: Path) -> tuple[str, int]:
    release = installed_version(part.sdk)
    if release is None:
        return f"| {part.sdk} `{part.name}` | not installed: skipped | | |", 0
    label = f"| {part.sdk} {release} `{part.name}` |"
    try:
        tree = source_tree(part.sdk, release, cache)
    except SourceError as exc:
        print(f"{part.sdk}: {exc}", flush=True)
        return f"{label} cannot run: {exc} | | |", 2
    env: dict[str, str] = {}
    results: dict[Mode, RunResult] = {}

    def run_one(mode: Mode) -> None:
        results[mode] = result = run_part(
            part, tree, mode, logs, extra_env=env, workers=args.workers, timeout=args.run_timeout
        )
        print(
            f"  {mode.value}: {result.count('passed')} passed, {result.count('failed')} failed, "
            f"{result.count('error')} errors, {result.count('skipped')} skipped "
            f"in {_time(result)} (log: {result.log})",
            flush=True,
        )

    def run_all() -> None:
        # The suites mostly wait (retry back-offs, timeouts): the modes run side by side.
        print(f"running {part.sdk} {release} {part.name}: {', '.join(m.value for m in modes)}", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(run_one, modes))

    if part.needs_mock:
        try:
            with mock_server(cache, args.openapi_spec) as url:
                env["TEST_API_BASE_URL"] = url
                run_all()
        except MockUnavailable as exc:
            print(f"skipping {part.sdk} {part.name}: {exc}", flush=True)
            return f"{label} skipped: {exc} | | |", 0
    else:
        run_all()
    bare = results.get(Mode.BARE)
    if bare is None or not bare.outcomes:
        return f"{label} no outcome from the bare run (see {logs}) | | |", 2
    cells, worst = [], 0
    for mode in (Mode.PRODUCTION, Mode.STRICT):
        other = results.get(mode)
        if other is None:
            cells.append("-")
            continue
        lost = _differences(bare, other)
        for test, outcome in sorted(lost.items()):
            print(f"  DIFFERS in {mode.value}: {test}: passed bare, {outcome} here", flush=True)
        if other.last_error:
            print(f"  {mode.value}: last internal error: {other.last_error}", flush=True)
        worst = max(worst, 1 if lost else 0)
        cells.append(_cell(bare, other))
    return f"{label} {_bare_cell(bare)} | {' | '.join(cells)} |", worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="only the subset CI runs")
    parser.add_argument(
        "--sdk", action="append", choices=sorted({p.sdk for p in PARTS}), help="only this SDK (repeatable)"
    )
    parser.add_argument(
        "--modes", default="bare,production,strict", help="comma-separated: bare,production,strict"
    )
    parser.add_argument("--jobs", type=int, default=3, help="modes run side by side (default 3)")
    parser.add_argument(
        "--workers", type=int, default=3, help="pytest-xdist workers per run (0: one process; default 3)"
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=RUN_TIMEOUT_S,
        help=f"seconds after which one run of a suite is killed (default {RUN_TIMEOUT_S:.0f})",
    )
    parser.add_argument("--openapi-spec", help="OpenAI's OpenAPI description, for the mock server")
    args = parser.parse_args(argv)
    modes = [Mode(m.strip()) for m in args.modes.split(",")]
    if Mode.BARE not in modes:
        modes.insert(0, Mode.BARE)
    cache = cache_dir()
    logs = cache / "logs"
    logs.mkdir(exist_ok=True)
    parts = [p for p in PARTS if (p.fast if args.fast else p.full) and (not args.sdk or p.sdk in args.sdk)]
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    rows, status = [], 0
    for part in parts:
        row, worst = _run(part, modes, args, cache, logs)
        rows.append(row)
        status = max(status, worst)
    minutes = (time.monotonic() - started) / 60
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_minutes = (usage.ru_utime + usage.ru_stime - cpu_before) / 60
    print(
        f"\nconformance ({'fast' if args.fast else 'full'}), Python {platform.python_version()}, "
        f"{minutes:.1f} min wall, {cpu_minutes:.1f} CPU-min on {os.cpu_count()} cores "
        f"(load average at the end: {os.getloadavg()[0]:.1f}); "
        "cells: tests passing, differences from bare, [wall time, CPU time]"
    )
    print("| suite | bare | instrumented, production | instrumented, strict |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print("conformance: " + ("no differences" if status == 0 else "DIFFERENCES (see above)"))
    return status


if __name__ == "__main__":
    sys.exit(main())
