"""pytest plugin the conformance run loads into an SDK's own test suite (``-p``).

``SESSIONWARE_CONFORMANCE_MODE`` says how the suite runs:

* ``bare``: nothing of sessionware is installed; only outcomes are collected;
* ``production``: ``sessionware.instrument()`` for the whole run, bookkeeping failures
  logged and counted as in a user's process;
* ``strict``: the same with strict mode on (``SESSIONWARE_STRICT=1``), so a failure of
  ours is raised into the test that caused it.

Each test's outcome (the worst of its setup, call and teardown: ``passed``, ``xpassed``,
``skipped``, ``xfailed``, ``failed``, ``error``; a module that cannot be collected is an
``error`` under its own id) is written as JSON to
``SESSIONWARE_CONFORMANCE_OUT``, with sessionware's internal error count, so the runner
can compare runs test by test. Each outcome is also appended to ``OUT.partial`` as it is
known, so a run killed before its end still tells what it finished. Under pytest-xdist
every worker is instrumented and writes its own error count beside it (``OUT.<worker>``);
the controller, which sees every test's reports, writes the outcomes.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import pytest

_RANK = {"passed": 0, "xpassed": 0, "skipped": 1, "xfailed": 1, "failed": 2, "error": 3}
_outcomes: dict[str, str] = {}
_mode = "bare"
_partial: IO[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _mode, _partial
    _mode = os.environ.get("SESSIONWARE_CONFORMANCE_MODE", "bare")
    out = os.environ.get("SESSIONWARE_CONFORMANCE_OUT")
    if out and not hasattr(config, "workerinput"):
        _partial = open(f"{out}.partial", "a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)
    if _mode == "bare":
        return
    import sessionware
    from sessionware.adapters.api import set_strict

    set_strict(_mode == "strict")
    sessionware.instrument(store="memory://")


def _outcome(report: pytest.TestReport) -> str:
    outcome: str = report.outcome
    if hasattr(report, "wasxfail"):  # marked xfail: failed as expected, or passed anyway
        outcome = "xfailed" if report.skipped else "xpassed" if report.passed else outcome
    if report.when != "call" and outcome == "failed":
        outcome = "error"
    return outcome


def _note(test: str, outcome: str) -> None:
    previous = _outcomes.get(test)
    if previous is None or _RANK[outcome] > _RANK[previous]:
        _outcomes[test] = outcome
        if _partial is not None:
            _partial.write(json.dumps([test, outcome]) + "\n")
            _partial.flush()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _note(report.nodeid, _outcome(report))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module that cannot be collected is an ``error`` of its own (its tests are missing)."""
    if report.failed:
        _note(report.nodeid, "error")


def pytest_unconfigure(config: pytest.Config) -> None:
    global _partial
    if _partial is not None:
        _partial.close()
        _partial = None
    out = os.environ.get("SESSIONWARE_CONFORMANCE_OUT")
    if not out:
        return
    worker = getattr(config, "workerinput", {}).get("workerid")
    summary: dict[str, Any] = {"mode": _mode, "outcomes": {} if worker else _outcomes}
    if worker:
        out = f"{out}.{worker}"
    if _mode != "bare":
        from sessionware.adapters.api import health

        summary["internal_errors"] = health().internal_errors
        summary["last_error"] = health().last_error
        summary["last_where"] = health().last_where
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
