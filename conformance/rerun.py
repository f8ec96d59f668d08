"""Re-running a suite's differences, to tell a test that is flaky anyway from one we break.

A test that passed bare and not under sessionware in the whole run is run again, alone with
the other differences (one pytest process per mode), bare and in the mode where it differed,
``times`` rounds in turn. If it fails bare in any of those rounds, it is flaky without
sessionware (a timeout the machine's load exceeds, an order, a port) and is reported as
such, not counted as a difference. Otherwise it stays a difference, even when it passed
on every re-run under sessionware: a flake we may cause is still ours. The rounds' counts
are said beside each test either way.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from conformance.compare import PASSING, Rerun, differences
from conformance.suites import Mode, Part, RunResult, run_part

__all__ = ["MAX_RERUN", "rerun_differences"]

# Past this many differences in a mode something is broken for good there (a run that
# stopped early misses every test after): re-running them proves nothing.
MAX_RERUN = 200


def rerun_differences(
    part: Part,
    tree: Path,
    results: Mapping[Mode, RunResult],
    logs: Path,
    *,
    extra_env: dict[str, str],
    workers: int,
    timeout: float,
    times: int,
    say: Callable[[str], None] = print,
) -> dict[Mode, dict[str, Rerun]]:
    """Each mode's differences from bare, with how each fared when re-run ``times`` rounds."""
    bare = results.get(Mode.BARE)
    if bare is None or times <= 0:
        return {}
    lost: dict[Mode, list[str]] = {}
    for mode, other in results.items():
        found = differences(bare, other) if mode is not Mode.BARE else {}
        if len(found) > MAX_RERUN:
            say(f"  {mode.value}: {len(found)} differences, more than {MAX_RERUN}: not re-run")
        elif found:
            lost[mode] = sorted(found)
    every = sorted({test for tests in lost.values() for test in tests})
    if not every:
        return {}
    say(f"  re-running the {len(every)} differing tests, bare and under sessionware, {times} rounds")
    failures: dict[Mode, Counter[str]] = {mode: Counter() for mode in (Mode.BARE, *lost)}
    for round_ in range(1, times + 1):
        for mode, tests in ((Mode.BARE, every), *lost.items()):
            name = f"{part.name} rerun {round_}"
            again = dataclasses.replace(part, name=name, paths=tuple(tests), ignore=())
            result = run_part(again, tree, mode, logs, extra_env=extra_env, workers=workers, timeout=timeout)
            failures[mode].update(test for test in tests if result.outcomes.get(test) not in PASSING)
    return {
        mode: {test: Rerun(times, failures[Mode.BARE][test], failures[mode][test]) for test in tests}
        for mode, tests in lost.items()
    }
