"""pytest plugin the conformance run loads into an SDK's own test suite (``-p``).

``SESSIONWARE_CONFORMANCE_MODE`` says how the suite runs:

* ``bare``: nothing of sessionware is installed; only outcomes are collected;
* ``production``: ``sessionware.instrument()`` for the whole run, bookkeeping failures
  logged and counted as in a user's process;
* ``strict``: the same with strict mode on (``SESSIONWARE_STRICT=1``), so a failure of
  ours is raised into the test that caused it.

Each test's outcome (the worst of its setup, call and teardown) is written as JSON to
``SESSIONWARE_CONFORMANCE_OUT``, with sessionware's internal error count, so the
runner can compare runs test by test. Under pytest-xdist every worker is instrumented
and writes its own error count beside it (``OUT.<worker>``); the controller, which sees
every test's reports, writes the outcomes.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_outcomes: dict[str, str] = {}
_mode = "bare"


def pytest_configure(config: pytest.Config) -> None:
    global _mode
    _mode = os.environ.get("SESSIONWARE_CONFORMANCE_MODE", "bare")
    if _mode == "bare":
        return
    import sessionware
    from sessionware.adapters.api import set_strict

    set_strict(_mode == "strict")
    sessionware.instrument(store="memory://")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        outcome: str = report.outcome
        if report.when != "call" and outcome == "failed":
            outcome = "error"
        previous = _outcomes.get(report.nodeid)
        if previous is None or _RANK[outcome] > _RANK[previous]:
            _outcomes[report.nodeid] = outcome


def pytest_unconfigure(config: pytest.Config) -> None:
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
