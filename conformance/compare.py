"""How the runs of one suite compare, test by test, and the row of the printed table.

The rule: a test that passes bare (``passed``, or ``xpassed``: marked xfail and passing
anyway) and does not pass under sessionware is a **difference**, whatever it does there
instead: fails, errors in setup or teardown, is skipped, fails as an expected failure, or
is missing (not collected). Only differences fail the run; a run killed at its timeout
is compared on the tests it finished, and the suite is left not concluded. Tests that do
not pass bare are not compared: skipped and expected failures, and the environment's
failures (a test failing bare, for want of something on this machine), which the bare
cell counts. A test passing only under sessionware is counted apart. A difference that,
re-run (``conformance.rerun``), fails bare too is flaky without sessionware: said and
counted apart, not a difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from conformance.suites import Mode, RunResult

__all__ = ["PASSING", "Rerun", "differences", "gained", "killed", "summarize", "worst_status"]

PASSING = frozenset({"passed", "xpassed"})


@dataclass(frozen=True)
class Rerun:
    """How a differing test fared when re-run ``rounds`` times bare and in its mode."""

    rounds: int
    bare_failures: int
    failures: int

    @property
    def flaky_bare(self) -> bool:
        """It failed bare too: flaky without sessionware, not a difference."""
        return self.bare_failures > 0

    def __str__(self) -> str:
        return f"re-run {self.rounds} times: failed {self.failures} here, {self.bare_failures} bare"


def killed(result: RunResult) -> bool:
    """The run was killed at its timeout: it tells only the tests it finished."""
    return result.exit_code == -1


def differences(bare: RunResult, other: RunResult) -> dict[str, str]:
    """Tests that pass bare and not in ``other``, with their outcome there (``missing``
    when they did not run; a killed run's tests not reached are not compared)."""
    return {
        test: other.outcomes.get(test, "missing")
        for test, outcome in bare.outcomes.items()
        if outcome in PASSING
        and other.outcomes.get(test) not in PASSING
        and (test in other.outcomes or not killed(other))
    }


def gained(bare: RunResult, other: RunResult) -> list[str]:
    """Tests that pass in ``other`` and not bare."""
    return sorted(
        test
        for test, outcome in other.outcomes.items()
        if outcome in PASSING and bare.outcomes.get(test) not in PASSING
    )


def _passing(result: RunResult) -> int:
    return sum(1 for outcome in result.outcomes.values() if outcome in PASSING)


def _time(result: RunResult) -> str:
    return f"{result.seconds:.0f} s, {result.cpu_seconds:.0f} CPU-s"


def _exit_note(result: RunResult) -> str:
    if result.exit_code == -1:
        return f" (killed after {result.seconds:.0f} s: --run-timeout; {len(result.outcomes)} tests finished)"
    return f" (pytest exit {result.exit_code})" if result.exit_code not in (0, 1) else ""


def _bare_cell(bare: RunResult) -> str:
    failed = bare.count("failed") + bare.count("error")
    text = f"{_passing(bare)} pass"
    if failed:
        text += f" ({failed} fail bare)"
    return f"{text}{_exit_note(bare)} [{_time(bare)}]"


def _cell(bare: RunResult, other: RunResult, lost: Mapping[str, str], flaky: int) -> str:
    text = f"{_passing(other)} pass" if not lost else f"**{len(lost)} differ** ({_passing(other)} pass)"
    if flaky:
        text += f", {flaky} flaky bare too"
    if extra := gained(bare, other):
        text += f", {len(extra)} pass only here"
    if other.internal_errors:
        text += f", {other.internal_errors} internal errors"
    return f"{text}{_exit_note(other)} [{_time(other)}]"


def summarize(
    label: str,
    results: Mapping[Mode, RunResult],
    *,
    reruns: Mapping[Mode, Mapping[str, Rerun]] | None = None,
    say: Callable[[str], None] = print,
) -> tuple[str, int]:
    """The table row of one suite's runs, and its status: 0 no difference, 1 differences,
    2 not concluded (no outcome from the bare run, or a run killed at its timeout, whose
    finished tests are compared all the same). Each difference is said, with its re-runs
    (``reruns``) when it had some; one that failed bare when re-run is flaky, not counted."""
    bare = results.get(Mode.BARE)
    if bare is None or not bare.outcomes:
        where = f" (see {bare.log})" if bare is not None and bare.log is not None else ""
        return f"{label} no outcome from the bare run{where} | | |", 2
    cells, worst = [], 0
    for mode in (Mode.PRODUCTION, Mode.STRICT):
        other = results.get(mode)
        if other is None:
            cells.append("-")
            continue
        lost, flaky = differences(bare, other), 0
        again = (reruns or {}).get(mode, {})
        for test, outcome in sorted(lost.items()):
            rerun = again.get(test)
            note = f" ({rerun})" if rerun else ""
            if rerun is not None and rerun.flaky_bare:
                say(f"  flaky bare too, in {mode.value}: {test}: passed bare, {outcome} here{note}")
                del lost[test]
                flaky += 1
            else:
                say(f"  DIFFERS in {mode.value}: {test}: passed bare, {outcome} here{note}")
        if other.last_error:
            say(f"  {mode.value}: last internal error: {other.last_error}")
        worst = worst_status(worst, 1 if lost else 2 if killed(other) else 0)
        cells.append(_cell(bare, other, lost, flaky))
    if killed(bare):
        worst = worst_status(worst, 2)
    return f"{label} {_bare_cell(bare)} | {' | '.join(cells)} |", worst


def worst_status(first: int, second: int) -> int:
    """Differences (1) outrank a run that could not conclude (2), which outranks none (0)."""
    return 1 if 1 in (first, second) else max(first, second)
