"""``python -m conformance [--fast] [--sdk openai] [--modes bare,production,strict]``.

Exit status: 1 when a test that passes bare does not pass under sessionware; else 2 when
a suite could not run or a run was killed at its timeout (its finished tests compared);
else 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from conformance.compare import Rerun, summarize, worst_status
from conformance.mock_server import MOCK_START_S, MockUnavailable, mock_server
from conformance.rerun import rerun_differences
from conformance.sources import SourceError, cache_dir, installed_version, source_tree
from conformance.suites import PARTS, RUN_TIMEOUT_S, Mode, Part, RunResult, run_modes


def _say(text: str) -> None:
    print(text, flush=True)


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
    reruns: dict[Mode, dict[str, Rerun]] = {}

    def run_all() -> None:
        print(f"running {part.sdk} {release} {part.name}: {', '.join(m.value for m in modes)}", flush=True)
        results.update(
            run_modes(
                part,
                tree,
                modes,
                logs,
                extra_env=env,
                jobs=args.jobs,
                workers=args.workers,
                timeout=args.run_timeout,
                say=_say,
            )
        )
        reruns.update(
            rerun_differences(
                part,
                tree,
                results,
                logs,
                extra_env=env,
                workers=args.workers,
                timeout=args.run_timeout,
                times=args.reruns,
                say=_say,
            )
        )

    if part.needs_mock:
        try:
            with mock_server(cache, args.openapi_spec, start_timeout=args.mock_start_timeout) as url:
                env["TEST_API_BASE_URL"] = url
                run_all()
        except MockUnavailable as exc:
            print(f"skipping {part.sdk} {part.name}: {exc}", flush=True)
            return f"{label} skipped: {exc} | | |", 0
    else:
        run_all()
    return summarize(label, results, reruns=reruns, say=_say)


def run_logs(cache: Path) -> Path:
    """A folder of this run's own under ``cache/logs`` (named by its start time and process),
    so runs side by side, or one after another, never read or remove each other's logs."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (cache / "logs").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{stamp}-{os.getpid()}-", dir=cache / "logs"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="only the subset CI runs")
    parser.add_argument(
        "--sdk", action="append", choices=sorted({p.sdk for p in PARTS}), help="only this SDK (repeatable)"
    )
    parser.add_argument(
        "--part",
        action="append",
        help="only the parts whose name starts with this, e.g. tests/api_resources (repeatable)",
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
    parser.add_argument(
        "--reruns",
        type=int,
        default=3,
        help="rounds of re-running the differences bare and in their mode; one failing bare "
        "on a re-run is flaky without sessionware, not a difference (0: no re-runs; default 3)",
    )
    parser.add_argument("--openapi-spec", help="OpenAI's OpenAPI description, for the mock server")
    parser.add_argument(
        "--mock-start-timeout",
        type=float,
        default=MOCK_START_S,
        help=f"seconds the mock server may take to start (default {MOCK_START_S:.0f})",
    )
    parser.add_argument(
        "--logs", help="folder for this run's logs (default: a new one under the cache's logs/)"
    )
    args = parser.parse_args(argv)
    modes = [Mode(m.strip()) for m in args.modes.split(",")]
    if Mode.BARE not in modes:
        modes.insert(0, Mode.BARE)
    cache = cache_dir()
    logs = Path(args.logs) if args.logs else run_logs(cache)
    logs.mkdir(parents=True, exist_ok=True)
    print(f"logs of this run: {logs}", flush=True)
    parts = [
        p
        for p in PARTS
        if (p.fast if args.fast else p.full)
        and (not args.sdk or p.sdk in args.sdk)
        and (not args.part or p.name.startswith(tuple(args.part)))
    ]
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    rows, status = [], 0
    for part in parts:
        row, worst = _run(part, modes, args, cache, logs)
        rows.append(row)
        status = worst_status(status, worst)
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
    verdict = {
        0: "no differences",
        1: "DIFFERENCES (see above)",
        2: "no differences in what ran, NOT CONCLUDED (see above)",
    }
    print("conformance: " + verdict[status])
    return status


if __name__ == "__main__":
    sys.exit(main())
